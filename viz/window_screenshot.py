#!/usr/bin/env python
"""A screenshot of the real Open3D window, as the window tests take them: `pcseg viz` on a private
virtual X display (Xvfb), photographed with ImageMagick's `import` once its frame is drawn.

    python viz/window_screenshot.py OUT.png SCENE [pcseg viz options ...]
    python viz/window_screenshot.py docs/images/window.png out/demo/data/scans/scene0000_00 \\
        --pred pred --side-by-side --width 1280 --height 560

Prints what the command printed beside the window (key help, colour legend). Needs Debian's xvfb,
xdotool and imagemagick (`make test` installs them).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "viz"))  # the tests' X display helper

from xdisplay import VirtualDisplay, Window, missing_tools  # noqa: E402


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    missing = missing_tools()
    if missing:
        sys.exit(f"window_screenshot: apt-get install {' '.join(missing)}")
    from PIL import Image

    out, viz_args = Path(sys.argv[1]), sys.argv[2:]
    display = VirtualDisplay((2000, 1400))
    try:
        with tempfile.TemporaryDirectory() as runtime_dir:
            with Window(display, ["-m", "pcseg", "viz", *viz_args], "pcseg viz", runtime_dir) as window:
                window.wait_for_line(" [")
                shot = window.settled_screenshot()
                window.quit("q", timeout=30)
    finally:
        display.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(shot).save(out)
    print(window.output)
    print(f"wrote {out} ({shot.shape[1]}x{shot.shape[0]})")


if __name__ == "__main__":
    main()
