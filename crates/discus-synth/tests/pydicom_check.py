"""Reads synthetic DICOM files with pydicom (an independent reader) and prints, per file, what the
Rust test compares: UIDs, instance number, geometry, and two exact checksums of the pixel values.

Usage: python pydicom_check.py FILE... ; prints one JSON object per line.
"""
import json
import sys

import numpy as np
import pydicom

for path in sys.argv[1:]:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.int64).ravel()
    w = (np.arange(arr.size, dtype=np.int64) % 1000) + 1
    print(json.dumps({
        "path": path,
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "sop_class": str(ds.SOPClassUID),
        "study_uid": str(ds.StudyInstanceUID),
        "series_uid": str(ds.SeriesInstanceUID),
        "patient_id": str(ds.PatientID),
        "instance": int(ds.InstanceNumber),
        "rows": int(ds.Rows),
        "cols": int(ds.Columns),
        "ipp": [float(v) for v in ds.ImagePositionPatient],
        "iop": [float(v) for v in ds.ImageOrientationPatient],
        "spacing": [float(v) for v in ds.PixelSpacing],
        "sum": int(arr.sum()),
        "wsum": int((arr * w).sum()),
    }))
