#!/usr/bin/env python3
"""Runs submit descriptions through HTCondor's own submit parser, offline, and prints the
job ads it builds, with `Arguments` and `Environment` decoded into argv lists and maps.

Needs the version-1 Python bindings, whose `htcondor.Submit(text).jobs()` runs the same
SubmitHash -> job ClassAd code as condor_submit without any daemon. They ship in the PyPI
wheels up to 24.x; pin `htcondor==24.0.24` (25.x only has htcondor2, where jobs() is a stub).

Input (stdin): {"cases": [{"id": str, "submit": str, "cluster": int, "append": [str, ...]}]}
  "append" lines are inserted before the queue statement, as `condor_submit -append` does.
Output (stdout): {"htcondor_version": str, "results": [{"id": str, "error": str|null,
  "procs": [{"ad": {attribute: value, ...}, "argv": [...]|null, "env": {...}|null}]}]}
  "ad" holds the attributes listed in ATTRIBUTES plus every custom (+Name / MY.Name) one, in
  the ClassAd JSON encoding condor_q -json uses.
Exit status: 0 when every case was processed (parse errors are reported per case), 2 when
the bindings are missing or the input is not understood.
"""
import json
import os
import sys
import warnings

ATTRIBUTES = [
    "ClusterId", "ProcId", "JobUniverse", "Cmd", "Args", "Arguments", "Env", "Environment",
    "Iwd", "In", "Out", "Err", "UserLog", "RequestCpus", "RequestMemory", "RequestDisk",
    "RequestGPUs", "JobPrio", "JobStatus", "JobBatchName", "TransferExecutable",
    "AllowedExecuteDuration", "JobMaxRetries", "JobNotification", "Requirements",
]


def fail(message):
    sys.stderr.write("check_submit.py: %s\n" % message)
    sys.exit(2)


def load_bindings():
    warnings.simplefilter("ignore")  # the v1 bindings warn about the null configuration
    os.environ.setdefault("CONDOR_CONFIG", "/dev/null")
    try:
        import htcondor  # version-1 bindings
    except ImportError as e:
        fail("cannot import the htcondor v1 bindings (pip install htcondor==24.0.24): %s" % e)
    if not hasattr(htcondor, "Submit") or not hasattr(htcondor.Submit, "jobs"):
        fail("htcondor %s has no v1 Submit.jobs(); install htcondor==24.0.24" % getattr(htcondor, "__version__", "?"))
    return htcondor


def decode_v2_raw(text):
    """Splits a job ad's Arguments/Environment (the V2 raw form, no outer double quotes):
    blanks separate items, '...' groups, '' inside quotes is a literal '."""
    items, current, quoted, started, i = [], [], False, False, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    current.append("'")
                    i += 2
                    continue
                quoted = False
            else:
                current.append(c)
        elif c == "'":
            quoted = True
            started = True
        elif c in " \t":
            if current or started:
                items.append("".join(current))
                current, started = [], False
        else:
            current.append(c)
            started = True
        i += 1
    if current or started:
        items.append("".join(current))
    return items


def with_appended(text, lines):
    if not lines:
        return text
    out, done = [], False
    for line in text.splitlines(keepends=True):
        if not done and line.lstrip().lower().startswith("queue"):
            out.extend(l + "\n" for l in lines)
            done = True
        out.append(line)
    return "".join(out)


def run_case(htcondor, case):
    text = with_appended(case["submit"], case.get("append") or [])
    try:
        sub = htcondor.Submit(text)
        ads = list(sub.jobs(clusterid=int(case.get("cluster", 1)), qdate=1700000000, owner="farm"))
    except Exception as e:  # HTCondorValueError / HTCondorInternalError
        return {"id": case["id"], "error": "%s: %s" % (type(e).__name__, str(e).strip() or "(no message)"), "procs": []}
    custom = [k[3:] if k.upper().startswith("MY.") else k[1:]
              for k in sub.keys() if k.startswith("+") or k.upper().startswith("MY.")]
    procs = []
    for ad in ads:
        full = json.loads(ad.printJson())
        kept = {k: full[k] for k in ATTRIBUTES + custom if k in full}
        argv = decode_v2_raw(full["Arguments"]) if "Arguments" in full else None
        env = None
        if "Environment" in full:
            env = {}
            for item in decode_v2_raw(full["Environment"]):
                name, _, value = item.partition("=")
                env[name] = value
        procs.append({"ad": kept, "argv": argv, "env": env})
    return {"id": case["id"], "error": None, "procs": procs}


def main():
    htcondor = load_bindings()
    try:
        cases = json.load(sys.stdin)["cases"]
    except Exception as e:
        fail("input is not {\"cases\": [...]}: %s" % e)
    results = [run_case(htcondor, case) for case in cases]
    json.dump({"htcondor_version": htcondor.version(), "results": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
