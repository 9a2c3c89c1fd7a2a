"""KCenterGreedy on a torch device against its bandwidth floor and against the CPU path.

    python benchmarks/kcenter_gpu.py                 # n=230,000, d=1024, k=70,000 on cuda
    python benchmarks/kcenter_gpu.py --dry           # tiny sizes on the CPU (checks the code)

Data: uniform unit vectors (pruning cannot help; every step reads the whole matrix). Floor:
k passes over the n x d float32 matrix at the device's measured bandwidth (a device-to-device
copy, read + written bytes per second, or a float32 matrix-vector product if that reads
faster; best of 10). The CPU comparison runs both paths on the first `--cpu-n` rows with
`--cpu-k` centers and checks that they select the same indices.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from warriorcoder.scoring.kcenter import kcenter_greedy, kcenter_greedy_torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(where: torch.device, fn, *args):
    sync(where)
    start = time.perf_counter()
    out = fn(*args)
    sync(where)
    return out, time.perf_counter() - start


def bandwidth(points: torch.Tensor, tries: int = 10) -> tuple[float, float]:
    """(copy, matrix-vector) bytes per second on the points' device."""
    target = torch.empty_like(points)
    center = points[0].clone()
    copy = vector = float("inf")
    for _ in range(tries):
        copy = min(copy, timed(points.device, target.copy_, points)[1])
        vector = min(vector, timed(points.device, torch.mv, points, center)[1])
    nbytes = points.numel() * points.element_size()
    return 2 * nbytes / copy, nbytes / vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=230_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=70_000)
    parser.add_argument("--cpu-n", type=int, default=50_000)
    parser.add_argument("--cpu-k", type=int, default=2_000)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args()
    if args.dry:
        args.n, args.dim, args.k, args.cpu_n, args.cpu_k = 3000, 64, 300, 2000, 100
        args.device = "cpu"
    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(0)
    points = torch.randn(args.n, args.dim, device=device, generator=generator)
    points /= torch.linalg.vector_norm(points, dim=1, keepdim=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"

    copy_bw, vector_bw = bandwidth(points)
    floor = args.k * points.numel() * 4 / max(copy_bw, vector_bw)
    # kcenter_greedy takes the torch path for a tensor off the CPU; --dry calls it directly.
    select = kcenter_greedy if device.type != "cpu" else kcenter_greedy_torch
    result, seconds = timed(device, select, points, args.k, 0)
    print(f"KCenterGreedy on {name}: uniform unit vectors, float32\n")
    print("| n | d | k | selected | s | floor s | copy GB/s | mv GB/s | / floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.n:,} | {args.dim} | {args.k:,} | {len(result.indices):,} | {seconds:.1f} | "
          f"{floor:.1f} | {copy_bw / 1e9:,.0f} | {vector_bw / 1e9:,.0f} | "
          f"{seconds / floor:.2f} |", flush=True)

    subset = points[: args.cpu_n]
    host = subset.cpu().numpy()
    on_device, device_s = timed(device, select, subset, args.cpu_k, 0)
    on_cpu, cpu_s = timed(torch.device("cpu"), kcenter_greedy, host, args.cpu_k, 0)
    same = np.array_equal(on_device.indices, on_cpu.indices)
    print(f"\nSubset: first {args.cpu_n:,} rows, k={args.cpu_k:,}\n")
    print("| path | s | speed-up | same indices |\n|---|---|---|---|")
    print(f"| numpy (CPU) | {cpu_s:.2f} | 1.0 | - |")
    print(f"| torch ({name}) | {device_s:.2f} | {cpu_s / device_s:.1f} | "
          f"{'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
