"""Writes a LumbarDISC-layout dataset of realistic MR slices for the header-scan benchmark.

Usage: make_dataset.py ROOT N_FILES

Each study has a Sagittal T1, a Sagittal T2/STIR and an Axial T2 series of 20 slices; every file is
a 512 x 512 16-bit MR image (explicit VR little endian, ~0.5 MiB) with the header fields a scanner
writes (UIDs following the LumbarDISC convention, geometry, timing, vendor). Deterministic.
"""
import os
import sys

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

SLICES = 20
ROWS = COLS = 512
KINDS = [
    ("Sagittal T1", [0, 1, 0, 0, 0, -1], 550, 12, None),
    ("Sagittal T2/STIR", [0, 1, 0, 0, 0, -1], 3200, 95, None),
    ("Axial T2", [1, 0, 0, 0, 1, 0], 4200, 105, None),
]


def main():
    root, n_files = sys.argv[1], int(sys.argv[2])
    pixels = bytes(((i * 7) % 4096) & 0xFF for i in range(ROWS * COLS * 2))
    n_series = max(1, n_files // SLICES)
    descriptions = ["study_id,series_id,series_description"]
    written = 0
    for s in range(n_series):
        study = 100000 + s // 3
        kind, iop, tr, te, ti = KINDS[s % 3]
        series = 5000000 + s
        folder = os.path.join(root, "train_images", str(study), str(series))
        os.makedirs(folder, exist_ok=True)
        descriptions.append(f"{study},{series},{kind}")
        for k in range(SLICES):
            n = k + 1
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.9.{series}.{n}"
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.StudyDate = "20240101"
            ds.Modality = "MR"
            ds.Manufacturer = "SIEMENS"
            ds.InstitutionName = "Bench Hospital"
            ds.SeriesDescription = kind
            ds.ManufacturerModelName = "Avanto"
            ds.PatientName = str(study)
            ds.PatientID = str(study)
            ds.ScanningSequence = ["SE"]
            ds.SequenceVariant = ["SK", "SP"]
            ds.SliceThickness = "4"
            ds.RepetitionTime = str(tr)
            ds.EchoTime = str(te)
            ds.MagneticFieldStrength = "1.5"
            ds.SpacingBetweenSlices = "4.4"
            ds.StudyInstanceUID = str(study)
            ds.SeriesInstanceUID = str(series)
            ds.SeriesNumber = str(s % 3 + 1)
            ds.InstanceNumber = str(n)
            if iop[0] == 0:
                ds.ImagePositionPatient = [f"{-40 + 4.4 * k:.4f}", "-180", "180"]
            else:
                ds.ImagePositionPatient = ["-160", "-160", f"{60 - 4.4 * k:.4f}"]
            ds.ImageOrientationPatient = [str(v) for v in iop]
            ds.FrameOfReferenceUID = f"1.2.826.0.1.3680043.8.498.9.{study}"
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = ROWS
            ds.Columns = COLS
            ds.PixelSpacing = ["0.625", "0.625"]
            ds.BitsAllocated = 16
            ds.BitsStored = 12
            ds.HighBit = 11
            ds.PixelRepresentation = 0
            ds.WindowCenter = "600"
            ds.WindowWidth = "1200"
            ds.PixelData = pixels
            ds.save_as(os.path.join(folder, f"{n}.dcm"), enforce_file_format=True)
            written += 1
    with open(os.path.join(root, "train_series_descriptions.csv"), "w") as f:
        f.write("\n".join(descriptions) + "\n")
    print(f"wrote {written} files in {n_series} series under {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
