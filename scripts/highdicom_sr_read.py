# Reads a TID 1500 Comprehensive SR with highdicom (argv[1]) and prints, as JSON, every measurement
# group's tracking ids, codes, measurements, evaluations and image point, plus the reference codes
# from pydicom's PS3.16 tables. Used by the discus-sr and discus serve tests as an independent reader.
import json, sys
import highdicom as hd
from pydicom.sr.codedict import codes

sr = hd.sr.srread(sys.argv[1])
report = sr.content
assert isinstance(report, hd.sr.MeasurementReport), type(report)
out = []
groups = report.get_planar_roi_measurement_groups() + report.get_image_measurement_groups()
def code(c):
    return None if c is None else [c.value, c.scheme_designator]
for g in groups:
    sites = g.finding_sites
    assert len(sites) == 1
    site = sites[0]
    item = {
        "tracking_identifier": g.tracking_identifier,
        "tracking_uid": str(g.tracking_uid),
        "finding": code(g.finding_type),
        "site": code(site.value),
        "laterality": code(site.laterality),
        "topography": code(site.topographical_modifier),
        "measurements": [[m.name.value, m.name.scheme_designator, float(m.value), m.unit.value] for m in g.get_measurements()],
        "evaluations": [[e.name.value, e.name.scheme_designator] + code(e.value) for e in g.get_qualitative_evaluations()],
        "point": None,
    }
    if isinstance(g, hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations):
        roi = g.roi
        assert roi.graphic_type == hd.sr.GraphicTypeValues.POINT, roi.graphic_type
        data = roi.value
        ref = roi.ContentSequence[0].ReferencedSOPSequence[0]
        item["point"] = [float(data[0][0]) if data.ndim == 2 else float(data[0]),
                         float(data[0][1]) if data.ndim == 2 else float(data[1]),
                         ref.ReferencedSOPInstanceUID]
    out.append(item)
print(json.dumps({
    "groups": out,
    "stenosis": code(codes.SCT.Stenosis),
    "moderate": code(codes.cid3832.Moderate),
    "severe": code(codes.cid3832.Severe),
    "left": code(codes.cid244.Left),
    "right": code(codes.cid244.Right),
    "central": code(codes.cid2.Central),
    "discs": [code(getattr(codes.cid7604, n)) for n in ["L1L2Disc", "L2L3Disc", "L3L4Disc", "L4L5Disc", "L5S1Disc"]],
}))
