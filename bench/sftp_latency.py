"""Latency of the SFTP front door with the demo running: from the client's close to the file's result.

Start the demo (`scripts/demo`) in another terminal, then:

    .venv/bin/python bench/sftp_latency.py [--uploads 5] [--port 2222]

It uploads demo files under new names with paramiko, as the guide does. For each one it polls
`interval-data/accepted/<name>/` and `failed/<name>/` over SFTP until the original is there, and prints the
seconds from the `close` of the upload to the result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path

import paramiko


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("LEAP_HOME", ".leap")))
    parser.add_argument("--partner", default="sunrise-energy")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--gap", type=float, default=7.0, help="seconds between uploads (catch every sensor phase)")
    args = parser.parse_args()
    password = (args.home / "demo-api-key.txt").read_text().strip()
    sample = sorted((args.home / "demo-uploads" / args.partner).glob("*-interval-data-*.csv"))[0].read_bytes()

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=args.port, username=args.partner, password=password,
                   allow_agent=False, look_for_keys=False)
    ftp = client.open_sftp()
    latencies = []
    for i in range(args.uploads):
        name = f"latency-{uuid.uuid4().hex[:8]}.csv"
        with ftp.open(f"interval-data/{name}", "wb") as fh:
            fh.write(sample)
        closed = time.monotonic()
        while True:
            found = [folder for folder in ("accepted", "failed") if _exists(ftp, f"interval-data/{folder}/{name}/{name}")]
            if found:
                break
            if time.monotonic() - closed > 120:
                raise SystemExit(f"{name}: no result after 120 s")
            time.sleep(0.25)
        latencies.append(time.monotonic() - closed)
        print(f"{name}: {found[0]} after {latencies[-1]:.1f} s")
        if i + 1 < args.uploads:
            time.sleep(args.gap)
    client.close()
    print(f"close -> result: median {statistics.median(latencies):.1f} s, max {max(latencies):.1f} s "
          f"over {len(latencies)} uploads (target < 30 s)")


def _exists(ftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        ftp.stat(path)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
