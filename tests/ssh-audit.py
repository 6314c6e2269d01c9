#!/usr/bin/env python3
"""Runs ssh-audit against a labbench server and fails on any failure or
warning it reports, but the documented one: curve25519-sha256 is not
post-quantum (kept for OpenSSH clients before 9.9, which lack
mlkem768x25519-sha256). Also fails on its DHEat connection-rate note.

usage: ssh-audit.py SSH_AUDIT HOST PORT
"""

import json
import subprocess
import sys

ALLOWED_WARNINGS = {
    ("kex", "curve25519-sha256", "does not provide protection against post-quantum attacks"),
}
# A note about peers, not this server: clients must support strict kex too.
ALLOWED_NOTE_START = "Be aware that, while this target properly supports the strict key exchange"


def main() -> int:
    ssh_audit, host, port = sys.argv[1:4]
    run = subprocess.run(
        [ssh_audit, "-n", "-j", "-t", "10", "-p", port, host],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(f"ssh-audit gave no report (exit {run.returncode}):\n{run.stdout}{run.stderr}")
        return 1
    problems = []
    for section in ("kex", "key", "enc", "mac"):
        for entry in report.get(section, []):
            notes = entry.get("notes", {})
            for level in ("fail", "warn"):
                for note in notes.get(level, []):
                    if (section, entry["algorithm"], note) not in ALLOWED_WARNINGS:
                        problems.append(f"{level}: {section} {entry['algorithm']}: {note}")
    for note in report.get("additional_notes", []):
        if not note.startswith(ALLOWED_NOTE_START):
            problems.append(f"note: {note}")
    for cve in report.get("cves", []):
        problems.append(f"cve: {cve}")
    offered = {s: [e["algorithm"] for e in report.get(s, [])] for s in ("kex", "key", "enc", "mac")}
    print(json.dumps(offered))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
