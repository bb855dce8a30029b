"""Validates every template.yaml under a directory with openjd-model in one process:
decode (the schema check `openjd check` runs) and create_job with the defaults (format
strings resolved, the resolved job name checked). Prints one line per failure and exits 1
if any template fails."""
import pathlib
import sys

from openjd.model import DocumentType, create_job, decode_job_template, document_string_to_object


def main(root: str) -> int:
    failures = 0
    count = 0
    for path in sorted(pathlib.Path(root).rglob("template.yaml")):
        count += 1
        try:
            obj = document_string_to_object(document=path.read_text(encoding="utf-8"), document_type=DocumentType.YAML)
            template = decode_job_template(template=obj)
            create_job(job_template=template, job_parameter_values={})
        except Exception as exc:  # noqa: BLE001 - report every kind of refusal
            failures += 1
            print(f"FAIL {path}: {exc}")
    print(f"checked {count} templates, {failures} failed")
    return 1 if failures or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
