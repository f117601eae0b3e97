"""Wheelhouse helpers of .ci/gpu: leave out what the GPU image holds, split the rest into transfer-sized parts.

    python .ci/gpu_wheels.py drop-image WHEELHOUSE IMAGE_PACKAGES_TXT
    python .ci/gpu_wheels.py pack WHEELHOUSE PART_MIB
"""

import re
import shutil
import sys
from pathlib import Path


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def drop_image(folder: Path, listing: Path) -> list[str]:
    """Delete the wheels of projects the image lists; return their file names."""
    image = {_norm(line) for line in listing.read_text().split() if not line.startswith("#")}
    dropped = []
    for wheel in sorted(folder.glob("*.whl")):
        if _norm(wheel.name.split("-")[0]) in image:
            wheel.unlink()
            dropped.append(wheel.name)
    return dropped


def pack(folder: Path, part_mib: int) -> list[Path]:
    """Move the wheels into ``part-NN`` folders of at most ``part_mib`` MiB each (first fit, largest first)."""
    limit = part_mib * 2**20
    wheels = sorted(folder.glob("*.whl"), key=lambda w: (-w.stat().st_size, w.name))
    too_big = [w.name for w in wheels if w.stat().st_size > limit]
    if too_big:
        raise SystemExit(f"larger than one part of {part_mib} MiB: {', '.join(too_big)}")
    parts: list[list[Path]] = []
    used: list[int] = []
    for wheel in wheels:
        size = wheel.stat().st_size
        k = next((i for i, u in enumerate(used) if u + size <= limit), None)
        if k is None:
            parts.append([])
            used.append(0)
            k = len(parts) - 1
        parts[k].append(wheel)
        used[k] += size
    made = []
    for k, part in enumerate(parts, 1):
        dest = folder / f"part-{k:02d}"
        dest.mkdir(exist_ok=True)
        for wheel in part:
            shutil.move(str(wheel), dest / wheel.name)
        print(f"{dest}: {len(part)} wheels, {used[k - 1] / 2**20:.1f} MiB")
        made.append(dest)
    return made


if __name__ == "__main__":
    step, folder, arg = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if step == "drop-image":
        print(f"left out (the GPU image has them): {len(drop_image(folder, Path(arg)))} wheels")
    elif step == "pack":
        pack(folder, int(arg))
    else:
        raise SystemExit(__doc__)
