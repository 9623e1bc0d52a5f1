#!/usr/bin/env python3
"""Convert a PyTorch .pth checkpoint (a state_dict) to safetensors for uda-models.

    .venv/bin/python scripts/convert_pth.py IN.pth OUT.safetensors [--prefix-strip module.] [--key state_dict]

The file is read with torch.load(..., weights_only=True): only tensors and plain containers
are accepted, never arbitrary pickled objects, so an untrusted checkpoint cannot run code.
- --prefix-strip P (repeatable): remove P from the start of every key that has it
  (e.g. "module." left by DataParallel).
- --key K: the state_dict is entry K of the loaded dict (e.g. "state_dict", "model").
Non-tensor entries (epoch counters, ...) are an error listing them, unless --skip-non-tensors.
Tensors sharing storage (PyTorch-ENet's reused PReLU) are written once per key.

Then load the file with uda_models::load_safetensors and the WeightNaming of its origin:
torchvision ImageNet weights -> torchvision; FDA's DeepLab_init.pth -> fda-deeplab;
FDA / PyTorch-ENet training snapshots and our own checkpoints -> native.
"""

import argparse
import sys

import torch
from safetensors.torch import save_file


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help=".pth / .pt file holding a state_dict")
    ap.add_argument("output", help="safetensors file to write")
    ap.add_argument("--prefix-strip", action="append", default=[], metavar="P")
    ap.add_argument("--key", help="take the state_dict from this entry of the loaded dict")
    ap.add_argument("--skip-non-tensors", action="store_true")
    args = ap.parse_args(argv)

    try:
        obj = torch.load(args.input, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError and friends; say what that means
        sys.exit(
            f"convert_pth: {args.input}: cannot be read as weights only ({type(e).__name__}: {e}).\n"
            "It holds more than tensors (pickled objects); re-save its state_dict from trusted code."
        )
    if args.key is not None:
        if not isinstance(obj, dict) or args.key not in obj:
            keys = list(obj)[:20] if isinstance(obj, dict) else type(obj).__name__
            sys.exit(f"convert_pth: {args.input}: no entry '{args.key}' (top level: {keys})")
        obj = obj[args.key]
    if not isinstance(obj, dict):
        sys.exit(f"convert_pth: {args.input}: expected a dict of tensors, found {type(obj).__name__}; try --key")

    tensors, other = {}, []
    for key, value in obj.items():
        for p in args.prefix_strip:
            if key.startswith(p):
                key = key[len(p):]
                break
        if not isinstance(value, torch.Tensor):
            other.append(f"{key} ({type(value).__name__})")
            continue
        if key in tensors:
            sys.exit(f"convert_pth: two entries become '{key}' after stripping {args.prefix_strip}")
        tensors[key] = value.detach().clone().contiguous()
    if other and not args.skip_non_tensors:
        sys.exit(
            f"convert_pth: {args.input}: {len(other)} non-tensor entries: {', '.join(other[:20])}; "
            "pass --key if the weights are nested, or --skip-non-tensors"
        )
    if not tensors:
        sys.exit(f"convert_pth: {args.input}: no tensors found")
    save_file(tensors, args.output)
    print(f"convert_pth: {len(tensors)} tensors -> {args.output}")


if __name__ == "__main__":
    main()
