"""Opens an HTML file in headless Chromium, fails on console errors, and saves a screenshot.

Usage: python3 open_report.py REPORT.html SCREENSHOT.png

Chromium logs the page's console to stderr with --enable-logging (without the level); the report
has no script, so any console message, and any failed resource load, fails the check. The check first runs on a probe
page that logs an error, to prove it can fail.
"""
import os
import shutil
import subprocess
import sys
import tempfile

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if BROWSER is None:
    sys.exit("no chromium on PATH (Debian: apt-get install chromium)")


def load(html_path, screenshot):
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--log-level=0",
             "--window-size=1200,5000", f"--screenshot={screenshot}", "file://" + os.path.abspath(html_path)],
            capture_output=True, text=True, timeout=120)
    problems = [line for line in proc.stderr.splitlines()
                if ":CONSOLE" in line or "Failed to load resource" in line]
    return proc.returncode, problems


with tempfile.TemporaryDirectory() as tmp:
    probe = os.path.join(tmp, "probe.html")
    with open(probe, "w") as f:
        f.write("<!DOCTYPE html><html><body><script>console.error('probe')</script></body></html>")
    _, probe_problems = load(probe, os.path.join(tmp, "probe.png"))
    if not probe_problems:
        sys.exit("the console check did not see the probe page's error; it cannot be trusted")

code, problems = load(sys.argv[1], sys.argv[2])
if code != 0 or problems:
    sys.exit(f"chromium exit {code}; console problems: {problems}")
if not os.path.exists(sys.argv[2]):
    sys.exit("no screenshot written")
print("ok")
