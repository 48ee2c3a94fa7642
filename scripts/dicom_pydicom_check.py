#!/usr/bin/env python3
"""Cross-check `discus dicom decode` / `discus dicom info --json` against pydicom.

Usage: dicom_pydicom_check.py MANIFEST
MANIFEST is a tab-separated file of lines `DICOM_PATH<TAB>NPY_PATH<TAB>JSON_PATH[<TAB>TOLERANCE]`
written by the Rust test (crates/discus-cli/tests/dicom_pydicom.rs); TOLERANCE (default 0) is the
largest |difference| allowed per pixel value, 1 for lossy DCT files (the rounding freedom of an
inverse DCT). For each line, pydicom reads the DICOM file
independently and the script compares:
  - pixels: pydicom's pixel_array (stored values, no rescale/VOI) against the .npy: the same kind
    (signed/unsigned) and item size, the same shape (frames, rows, columns[, samples]) and every value;
  - header: the InstanceHeader JSON fields against pydicom's elements.
Prints one line per mismatch and exits 1 if there was any, 0 otherwise.
"""
import json
import math
import sys

import numpy as np
import pydicom
from pydicom.pixels import pixel_array


def text(ds, keyword):
    v = ds.get(keyword)
    if v is None or v == "":
        return None
    if isinstance(v, pydicom.multival.MultiValue):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def floats(ds, keyword):
    v = ds.get(keyword)
    if v is None or v == "":
        return None
    if isinstance(v, pydicom.multival.MultiValue):
        return [float(x) for x in v]
    return [float(v)]


def first(ds, keyword):
    v = floats(ds, keyword)
    return v[0] if v else None


def integer(ds, keyword):
    v = ds.get(keyword)
    if v is None or v == "":
        return None
    if isinstance(v, pydicom.multival.MultiValue):
        v = v[0]
    return int(v)


def expected_header(ds):
    rows = integer(ds, "Rows") or 0
    one = 1 if rows > 0 else 0
    frames = integer(ds, "NumberOfFrames")
    return {
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "sop_class_uid": text(ds, "SOPClassUID") or "",
        "sop_instance_uid": text(ds, "SOPInstanceUID") or "",
        "study_instance_uid": text(ds, "StudyInstanceUID") or "",
        "series_instance_uid": text(ds, "SeriesInstanceUID") or "",
        "frame_of_reference_uid": text(ds, "FrameOfReferenceUID"),
        "modality": text(ds, "Modality"),
        "series_number": integer(ds, "SeriesNumber"),
        "instance_number": integer(ds, "InstanceNumber"),
        "image_position_patient": floats(ds, "ImagePositionPatient"),
        "image_orientation_patient": floats(ds, "ImageOrientationPatient"),
        "pixel_spacing": floats(ds, "PixelSpacing"),
        "slice_thickness": first(ds, "SliceThickness"),
        "spacing_between_slices": first(ds, "SpacingBetweenSlices"),
        "rows": rows,
        "columns": integer(ds, "Columns") or 0,
        "number_of_frames": frames if frames is not None else one,
        "samples_per_pixel": integer(ds, "SamplesPerPixel") or one,
        "photometric_interpretation": text(ds, "PhotometricInterpretation"),
        "bits_allocated": integer(ds, "BitsAllocated") or 0,
        "bits_stored": integer(ds, "BitsStored") or 0,
        "high_bit": integer(ds, "HighBit"),
        "pixel_representation": integer(ds, "PixelRepresentation") or 0,
        "rescale_slope": first(ds, "RescaleSlope"),
        "rescale_intercept": first(ds, "RescaleIntercept"),
        "window_center": first(ds, "WindowCenter"),
        "window_width": first(ds, "WindowWidth"),
        "manufacturer": text(ds, "Manufacturer"),
        "manufacturer_model_name": text(ds, "ManufacturerModelName"),
        "magnetic_field_strength": first(ds, "MagneticFieldStrength"),
        "institution_name": text(ds, "InstitutionName"),
        "series_description": text(ds, "SeriesDescription"),
        "repetition_time": first(ds, "RepetitionTime"),
        "echo_time": first(ds, "EchoTime"),
        "inversion_time": first(ds, "InversionTime"),
        "scanning_sequence": text(ds, "ScanningSequence"),
        "burned_in_annotation": text(ds, "BurnedInAnnotation"),
    }


def same(a, b):
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=0, abs_tol=0)
    return a == b


def check(dcm, npy, js, tolerance, problems):
    ds = pydicom.dcmread(dcm)
    got = json.load(open(js))
    want = expected_header(ds)
    for k, v in want.items():
        if not same(got.get(k), v):
            problems.append(f"{dcm}: header {k}: discus {got.get(k)!r}, pydicom {v!r}")

    # Stored values: no colour conversion (the files checked are monochrome or RGB).
    ref = pixel_array(ds, as_rgb=False)
    frames = want["number_of_frames"]
    spp = want["samples_per_pixel"]
    shape = (frames, want["rows"], want["columns"]) + ((spp,) if spp > 1 else ())
    ref = ref.reshape(shape)
    arr = np.load(npy)
    if arr.shape != ref.shape:
        problems.append(f"{dcm}: shape discus {arr.shape}, pydicom {ref.shape}")
        return
    if arr.dtype.kind != ref.dtype.kind or arr.dtype.itemsize != ref.dtype.itemsize:
        problems.append(f"{dcm}: dtype discus {arr.dtype}, pydicom {ref.dtype}")
    diff = np.abs(arr.astype(np.int64) - ref.astype(np.int64)) > tolerance
    if diff.any():
        d = np.abs(arr.astype(np.int64) - ref.astype(np.int64)).max()
        problems.append(
            f"{dcm}: {int(diff.sum())} values differ by more than {tolerance} (max |diff| {d})"
        )


def main():
    problems = []
    n = 0
    for line in open(sys.argv[1]):
        line = line.rstrip("\n")
        if not line:
            continue
        dcm, npy, js, *rest = line.split("\t")
        tolerance = int(rest[0]) if rest else 0
        try:
            check(dcm, npy, js, tolerance, problems)
        except Exception as e:  # a pydicom failure is a finding too
            problems.append(f"{dcm}: pydicom failed: {type(e).__name__}: {e}")
        n += 1
    for p in problems:
        print(p)
    print(f"checked {n} files against pydicom {pydicom.__version__}: {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
