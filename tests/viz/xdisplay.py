"""A private virtual X display for the window tests, and a handle on a command's Open3D window
in it: wait for the window, press keys, take screenshots, read what the command prints.

Needs Debian's ``xvfb`` (Xvfb), ``xdotool`` and ``imagemagick`` (``import``); `make test` installs
them. Open3D's GLFW window then runs on Mesa's software OpenGL.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool", "import": "imagemagick"}


def missing_tools() -> list[str]:
    """The Debian packages of the tools that are not installed."""
    return [pkg for exe, pkg in TOOLS.items() if shutil.which(exe) is None]


class VirtualDisplay:
    """``Xvfb`` on a free display number (``-displayfd``: the server picks it and tells us)."""

    def __init__(self, size: tuple[int, int] = (1400, 1100)):
        read, write = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.process.kill()
            raise RuntimeError("Xvfb did not start")
        self.name = f":{number}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Window:
    """A command started on ``display`` that opens a window whose title contains ``title``."""

    def __init__(self, display: VirtualDisplay, args: list[str], title: str, runtime_dir: str,
                 cwd: str | None = None, timeout: float = 60.0):
        self.env = dict(os.environ, DISPLAY=display.name, XDG_RUNTIME_DIR=runtime_dir)
        self.process = subprocess.Popen([sys.executable, *args], env=self.env, cwd=cwd, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        self.id = None
        while time.monotonic() < deadline and self.process.poll() is None:
            found = self._xdotool("search", "--onlyvisible", "--name", title, check=False).split()
            if found:
                self.id = found[0]
                break
            time.sleep(0.3)
        if self.id is None:
            self.kill()
            raise AssertionError(f"no window titled {title!r} appeared; the command printed:\n{self.output}")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def _xdotool(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=20)
        if check and done.returncode:
            raise AssertionError(f"xdotool {' '.join(args)}: {done.stderr}")
        return done.stdout

    def wait_for_line(self, text: str, after: int = 0, timeout: float = 30.0) -> str:
        """The first printed line (from line ``after`` on) that contains ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if text in line:
                    return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"the command never printed {text!r}; it printed:\n{self.output}")

    def screenshot(self) -> np.ndarray:
        """UInt8Array[H, W, 3]: the window's contents as the X server shows them."""
        from PIL import Image

        done = subprocess.run(["import", "-window", self.id, "png:-"], env=self.env, capture_output=True,
                              timeout=30)
        if done.returncode:
            raise AssertionError(f"import -window {self.id}: {done.stderr.decode()}")
        return np.asarray(Image.open(io.BytesIO(done.stdout)).convert("RGB"))

    def settled_screenshot(self, different_from: np.ndarray | None = None, timeout: float = 20.0) -> np.ndarray:
        """A screenshot taken once two in a row agree and show more than one colour (a new window is
        black until its first frame is drawn), and that differs from ``different_from`` when given;
        after ``timeout`` the last one, whatever it shows."""
        deadline = time.monotonic() + timeout
        last = self.screenshot()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            shot = self.screenshot()
            if (np.array_equal(shot, last) and (shot != shot[0, 0]).any()
                    and (different_from is None or not np.array_equal(shot, different_from))):
                return shot
            last = shot
        return last

    def press(self, key: str, closes: bool = False) -> int:
        """Press ``key`` in the window; returns how many lines were printed before, for wait_for_line.
        ``closes``: the key closes the window, which may be gone before the key is released."""
        before = len(self.lines)
        self._xdotool("key", "--window", self.id, key, check=not closes)
        return before

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def quit(self, key: str = "q", timeout: float = 10.0) -> int:
        """Press a key that closes the window; the command's exit status."""
        self.press(key, closes=True)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc) -> None:  # a failed check never leaves the command running
        self.kill()
