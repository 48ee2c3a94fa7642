"""Opens discus synth masks with nibabel (an independent NIfTI reader) and computes each mask's
voxel-to-RAS affine independently from its DICOM slices with pydicom.

Usage: python nifti_check.py COHORT_ROOT ; prints one JSON object per mask file:
the nibabel sform and qform affines, the affine from the DICOM files, the shape and the labels present.
"""
import glob
import json
import os
import sys

import nibabel as nib
import numpy as np
import pydicom

root = sys.argv[1]
for path in sorted(glob.glob(os.path.join(root, "masks", "*", "*.nii.gz"))):
    img = nib.load(path)
    side = json.load(open(path[: -len(".nii.gz")] + ".json"))
    study = os.path.basename(os.path.dirname(path))
    series = str(side["series_id"])
    files = [
        os.path.join(root, "train_images", study, series, f"{n}.dcm")
        for n in side["instance_numbers"]
    ]
    dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    first, last = dss[0], dss[-1]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    dr, dc = (float(v) for v in first.PixelSpacing)  # between rows, between columns
    ipp0 = np.array([float(v) for v in first.ImagePositionPatient])
    if len(dss) > 1:
        step = (np.array([float(v) for v in last.ImagePositionPatient]) - ipp0) / (len(dss) - 1)
    else:
        step = np.cross(row_dir, col_dir) * float(first.SliceThickness)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc
    lps[:3, 1] = col_dir * dr
    lps[:3, 2] = step
    lps[:3, 3] = ipp0
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = np.asarray(img.dataobj)
    print(json.dumps({
        "path": path,
        "shape": list(img.shape),
        "dicom_shape": [int(first.Columns), int(first.Rows), len(dss)],
        "dtype": str(data.dtype),
        "sform_code": int(img.header["sform_code"]),
        "qform_code": int(img.header["qform_code"]),
        "affine": img.affine.tolist(),
        "sform": img.get_sform().tolist(),
        "qform": img.get_qform().tolist(),
        "qform_w": float(img.header.get_qform_quaternion()[0]),
        "dicom": ras.tolist(),
        "labels": sorted(int(v) for v in np.unique(data)),
    }))
