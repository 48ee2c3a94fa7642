#!/usr/bin/env python3
"""Writes the seed corpora of the discus fuzz targets (fuzz/corpus/<target>/) from the shared test
data (/work/shared/data, or $DISCUS_SHARED_DATA) and small hand-written CSV files.

Needs pydicom (only to pull the compressed fragments out of the DICOM files for `pixels_codec`):
    python=$(scripts/pyvenv seeds pydicom==3.0.2) && $python fuzz/seeds.py
Seeds are then minimised with `cargo fuzz cmin`; this script is how the corpora started.
"""
import os
import shutil
import struct
import sys

import pydicom
from pydicom.encaps import generate_frames

DATA = os.environ.get("DISCUS_SHARED_DATA", "/work/shared/data")
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
P = os.path.join(DATA, "dicom", "pydicom")
W = os.path.join(DATA, "dicom", "wg04")

# One small file per transfer syntax and pixel layout (the codec paths of decode_pixels).
PIXELS = [
    "MR_small.dcm",                     # explicit VR LE, 16-bit signed
    "MR_small_implicit.dcm",            # implicit VR LE
    "MR_small_bigendian.dcm",           # explicit VR BE
    "image_dfl.dcm",                    # deflated
    "MR_small_RLE.dcm",                 # RLE, 16-bit
    "SC_rgb_rle_2frame.dcm",            # RLE, RGB, 2 frames
    "rtdose_rle_1frame.dcm",            # RLE, 32-bit
    "SC_rgb_jpeg.dcm",                  # JPEG baseline RGB
    "SC_rgb_small_odd_jpeg.dcm",        # JPEG baseline 3x3 YBR_FULL
    "JPEG-lossy.dcm",                   # JPEG extended 12-bit
    "SC_rgb_jpeg_gdcm.dcm",             # JPEG lossless SV1
    "MR_small_jpeg_ls_lossless.dcm",    # JPEG-LS lossless
    "JPEGLSNearLossless_08.dcm",        # JPEG-LS near-lossless
    "SC_rgb_jls_lossy_line.dcm",        # JPEG-LS colour, line interleaved
    "MR_small_jp2klossless.dcm",        # JPEG 2000 lossless
    "JPEG2000.dcm",                     # JPEG 2000
    "SC_rgb_gdcm_KY.dcm",               # JPEG 2000 colour
    "liver_1frame.dcm",                 # 1-bit
    "rtdose_1frame.dcm",                # 32-bit native
    "SC_ybr_full_422_uncompressed.dcm", # native YBR_FULL_422
    "SC_rgb_small_odd.dcm",             # native RGB 3x3
    "ExplVR_LitEndNoMeta.dcm",          # no file meta group
]

# Headers and de-identification: every small file (odd structures included) and two real CTs.
SMALL = sorted(f for f in os.listdir(P) if f.endswith(".dcm") and os.path.getsize(os.path.join(P, f)) <= 40000)
HUMANS = [os.path.join(DATA, "deid", "humans", f) for f in ("ctbrain1.dcm", "ctbrain2.dcm")]

# pixels_codec: (file, codec index in discus_fuzz::CODECS); fragments become the seed body.
CODECS = ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
          "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
          "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"]
PHOTOMETRICS = ["MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL_422", "YBR_FULL", "YBR_RCT",
                "YBR_ICT", "PALETTE COLOR"]
CODEC_FILES = [os.path.join(P, f) for f in (
    "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm", "rtdose_rle_1frame.dcm",
    "SC_rgb_jpeg.dcm", "SC_rgb_small_odd_jpeg.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm",
    "SC_rgb_dcmtk_+eb+cr.dcm", "JPEG-lossy.dcm", "SC_rgb_jpeg_gdcm.dcm",
    "MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm",
    "SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm", "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm", "693_J2KI.dcm", "SC_rgb_gdcm_KY.dcm")] + [
    os.path.join(W, "J2KI", "CT2_J2KI"), os.path.join(W, "JPLY", "MR4_JPLY")]

CONDITIONS = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing",
              "right_neural_foraminal_narrowing", "left_subarticular_stenosis",
              "right_subarticular_stenosis"]
LEVELS = ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]
GRADES = ["Normal/Mild", "Moderate", "Severe", ""]


def words(s):
    return " ".join(w.capitalize() for w in s.split("_"))


def level_words(s):
    return s.upper().replace("_", "/")


def fresh(target):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def codec_seed(path):
    ds = pydicom.dcmread(path)
    ts = str(ds.file_meta.TransferSyntaxUID)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    fragment = next(generate_frames(ds.PixelData, number_of_frames=frames))
    ba = int(ds.BitsAllocated)
    bits = {8: 0, 16: 1, 32: 2}[ba] | (0x80 if int(getattr(ds, "PixelRepresentation", 0)) else 0)
    head = struct.pack("<BBBBHH", CODECS.index(ts), PHOTOMETRICS.index(ds.PhotometricInterpretation),
                       bits, ba - int(ds.BitsStored), (int(ds.Rows) - 1) % 1024,
                       (int(ds.Columns) - 1) % 1024)
    return head + fragment


def main():
    d = fresh("pixels")
    for f in PIXELS:
        shutil.copy(os.path.join(P, f), os.path.join(d, f))
    for target in ("header", "deid"):
        d = fresh(target)
        for f in SMALL:
            shutil.copy(os.path.join(P, f), os.path.join(d, f))
        for f in HUMANS:
            shutil.copy(f, os.path.join(d, os.path.basename(f)))
    d = fresh("pixels_codec")
    for f in CODEC_FILES:
        with open(os.path.join(d, os.path.basename(f).replace(".dcm", "") + ".codec"), "wb") as out:
            out.write(codec_seed(f))
    d = fresh("csv")
    train = ["study_id," + ",".join(f"{c}_{l}" for c in CONDITIONS for l in LEVELS)]
    for i, study in enumerate((4003253, 4646740, 7143189)):
        train.append(f"{study}," + ",".join(GRADES[(i + k) % 4] for k in range(25)))
    coords = ["study_id,series_id,instance_number,condition,level,x,y",
              "4003253,702807833,8,Spinal Canal Stenosis,L1/L2,322.8317757009346,227.9642523364486",
              "4003253,1054713880,4,Right Neural Foraminal Narrowing,L4/L5,187.96194503171246,251.75053078556263",
              "4646740,3201256954,20,Left Subarticular Stenosis,L5/S1,1e-07,2.0"]
    descs = ["study_id,series_id,series_description", "4003253,702807833,Sagittal T2/STIR",
             "4003253,1054713880,Sagittal T1", "4003253,2448190387,Axial T2"]
    sub = ["row_id,normal_mild,moderate,severe"]
    for c in CONDITIONS[:2]:
        for l in LEVELS[:3]:
            sub.append(f"4003253_{c}_{l},0.3333333333333333,0.3333333333333333,0.3333333333333333")
    for name, lines, nl in (("train.csv", train, "\n"), ("coordinates.csv", coords, "\n"),
                            ("descriptions.csv", descs, "\r\n"), ("submission.csv", sub, "\n")):
        with open(os.path.join(d, name), "w", newline="") as out:
            out.write(nl.join(lines) + nl)


if __name__ == "__main__":
    sys.exit(main())
