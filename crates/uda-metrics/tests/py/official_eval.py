"""Runs the official cityscapesscripts pixel-level evaluation on a Cityscapes-layout folder.

Usage: official_eval.py CITYSCAPES_ROOT RESULTS_DIR
Ground truth: CITYSCAPES_ROOT/gtFine/val/*/*_gtFine_labelIds.png; predictions: label-id PNGs
under RESULTS_DIR named <city>_<seq>_<frame>*.png (the script's own matching).
Prints JSON: {"classScores": {name: repr(iou) or null}, "average": repr or null}; floats as
repr strings so the caller parses them exactly.
"""
import glob
import json
import math
import os
import sys

cs_root, results = sys.argv[1], sys.argv[2]
# The module reads these at import time.
os.environ["CITYSCAPES_DATASET"] = cs_root
os.environ["CITYSCAPES_RESULTS"] = results
os.environ.pop("CITYSCAPES_EXPORT_DIR", None)

from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev  # noqa: E402

args = ev.args
args.evalInstLevelScore = False  # needs *_instanceIds.png, which the test does not write
args.evalPixelAccuracy = False
args.quiet = True
args.JSONOutput = False
args.colorized = False

gts = sorted(glob.glob(args.groundTruthSearch))
if not gts:
    sys.exit(f"no ground truth found at {args.groundTruthSearch}")
preds = [ev.getPrediction(args, gt) for gt in gts]
result = ev.evaluateImgLists(preds, gts, args)


def fmt(v):
    return None if math.isnan(v) else repr(float(v))


print(json.dumps({
    "classScores": {name: fmt(v) for name, v in result["classScores"].items()},
    "average": fmt(result["averageScoreClasses"]),
}))
