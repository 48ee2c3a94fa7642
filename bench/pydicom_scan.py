"""The pydicom reference for the header-scan benchmark: read every DICOM header under ROOT
(stop_before_pixels=True) and touch the fields `discus validate` uses. Prints files and seconds."""
import os
import sys
import time

from pydicom import dcmread

FIELDS = [
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
    "Rows", "Columns", "BitsStored", "PixelRepresentation", "Manufacturer",
    "MagneticFieldStrength", "SeriesDescription", "RepetitionTime", "EchoTime", "InversionTime",
]


def main():
    root = sys.argv[1]
    t0 = time.perf_counter()  # the walk is timed too, as discus's listing is
    paths = []
    for dirpath, _, files in os.walk(os.path.join(root, "train_images")):
        paths.extend(os.path.join(dirpath, f) for f in files if f.endswith(".dcm"))
    n = 0
    for p in paths:
        ds = dcmread(p, stop_before_pixels=True)
        for f in FIELDS:
            ds.get(f)
        n += 1
    dt = time.perf_counter() - t0
    print(f"{n} {dt:.6f}")


if __name__ == "__main__":
    main()
