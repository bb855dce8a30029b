#!/usr/bin/env python3
"""A loopback emulation of the AWS Deadline Cloud (and CloudWatch Logs) operations the
`deadline` CLI calls for `bundle submit`, `job get/list/cancel/requeue-tasks/logs`.

Run it with the Python of a venv holding `deadline` (boto3/botocore) and `openjd-model`:

    python deadline_emulator.py [--port 0]

It listens on 127.0.0.1 only and prints `PORT <n>` on its first output line. Point the CLI
at it with

    AWS_ENDPOINT_URL_DEADLINE=http://127.0.0.1:<n>  AWS_ENDPOINT_URL_LOGS=http://127.0.0.1:<n>
    AWS_DISABLE_HOST_PREFIX_INJECTION=true  (the model's `management.` host prefix)
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-west-2

What it checks, using botocore's own service models (`botocore/data/deadline`, `logs`):
- every request: the HTTP method and URI template of the operation, a SigV4 Authorization
  header scoped to the right service; the request is parsed back into the operation's
  parameters (URI labels, query string, headers, JSON body) and validated with botocore's
  `ParamValidator` plus the model's enums, patterns and ranges (which botocore's client does
  not check). A failure is answered with the service's `ValidationException` and recorded;
- every response it sends is validated against the operation's output shape the same way
  (an emulator bug is a 500, recorded too);
- CreateJob: the template is decoded and instantiated with openjd-model (as the service
  does), giving the steps and tasks that ListSteps/ListTasks return.

State is in memory. Control endpoints (not AWS), for tests:
    GET  /_control/calls               every call: service, operation, HTTP status, error
    GET  /_control/jobs/{jobId}        the stored job, including the CreateJob parameters
    POST /_control/jobs/{jobId}/status {"lifecycleStatus", "taskRunStatus",
                                        "lifecycleStatusMessage"}: sets the job, and every
                                        task to taskRunStatus
    POST /_control/jobs/{jobId}/log    {"lines": [...]}: appends to the job's session log
                                        (creating one session)
Not emulated: S3/STS (the emulated queue has no jobAttachmentSettings, so the CLI uploads
nothing), queue environments (the queue has none), workers, fleets, real scheduling: tasks
change status only through the control endpoint, UpdateJob and UpdateTask.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.loaders
import botocore.model
import botocore.validate

try:
    import openjd.model as ojd
except ImportError:  # pragma: no cover - reported at start
    ojd = None

FARM_ID = "farm-" + "0" * 31 + "1"
QUEUE_ID = "queue-" + "0" * 31 + "1"
CREATED_BY = "arn:aws:sts::000000000000:assumed-role/Emulated/farm-test"
REGION = "us-west-2"

TASK_RUN_STATUSES: list[str] = []
LIFECYCLE_STATUSES: list[str] = []
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "NOT_COMPATIBLE"}


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: Optional[dt.datetime]) -> Optional[str]:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def hex32() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------
# Service models and validation


class Service:
    """One botocore service model: its operations' routes and shapes."""

    def __init__(self, name: str):
        loader = botocore.loaders.Loader()
        self.model = botocore.model.ServiceModel(loader.load_service_model(name, "service-2"), name)
        self.protocol = self.model.protocol
        self.routes: list[tuple[str, re.Pattern[str], str]] = []
        for op_name in self.model.operation_names:
            op = self.model.operation_model(op_name)
            uri = op.http["requestUri"].split("?")[0]
            pattern = re.sub(r"\\\{(\w+)(\\\+)?\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(uri))
            self.routes.append((op.http["method"], re.compile(f"^{pattern}$"), op_name))

    def route(self, method: str, path: str) -> Optional[tuple[str, dict[str, str]]]:
        for m, rx, op in self.routes:
            match = rx.match(path)
            if match and m == method:
                return op, {k: unquote(v) for k, v in match.groupdict().items()}
        return None


def check(shape: botocore.model.Shape, value: Any, path: str, errors: list[str], wire: bool) -> None:
    """The model's constraints botocore's ParamValidator leaves out (enum, pattern, ranges),
    and types. `wire` is True for responses (timestamps are ISO strings there)."""
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for req in shape.required_members:
            if req not in value:
                errors.append(f"{path}: missing required member {req}")
        for k, v in value.items():
            if k not in shape.members:
                errors.append(f"{path}: unknown member {k}")
            else:
                check(shape.members[k], v, f"{path}.{k}", errors, wire)
        if shape.metadata.get("union") and len(value) != 1:
            errors.append(f"{path}: a union needs exactly one member, got {sorted(value)}")
    elif t == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items, outside {meta.get('min')}..{meta.get('max')}")
        for i, v in enumerate(value):
            check(shape.member, v, f"{path}[{i}]", errors, wire)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        for k, v in value.items():
            check(shape.key, k, f"{path} key", errors, wire)
            check(shape.value, v, f"{path}[{k}]", errors, wire)
    elif t == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value, re.S):
            errors.append(f"{path}: {value[:80]!r} does not match {meta['pattern']}")
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: length {len(value)} outside {meta.get('min')}..{meta.get('max')}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {value!r}")
            return
        if "min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} outside {meta.get('min')}..{meta.get('max')}")
    elif t in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: expected a number")
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean")
    elif t == "timestamp":
        if wire:
            try:
                dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                errors.append(f"{path}: {value!r} is not an ISO 8601 timestamp")


def coerce(shape: botocore.model.Shape, text: str) -> Any:
    """A URI/query/header value as the member's type."""
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text
    if shape.type_name == "boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


# ---------------------------------------------------------------------------------------
# State


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def not_found(kind: str, rid: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", f"{kind} {rid} not found", resourceId=rid, resourceType=kind)


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.created = now()

    def job(self, farm: str, queue: str, job_id: str) -> dict[str, Any]:
        self.queue(farm, queue)
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found("job", job_id)
        return job

    def queue(self, farm: str, queue: str) -> None:
        if farm != FARM_ID:
            raise not_found("farm", farm)
        if queue != QUEUE_ID:
            raise not_found("queue", queue)


def counts(tasks: list[dict[str, Any]]) -> dict[str, int]:
    out = {s: 0 for s in TASK_RUN_STATUSES}
    for t in tasks:
        out[t["runStatus"]] += 1
    return out


# The job's (and step's) taskRunStatus from its tasks: the first status present in this
# order. This is the emulator's rule, not a documented one; tests set every task alike.
AGGREGATE_ORDER = [
    "INTERRUPTING", "RUNNING", "STARTING", "ASSIGNED", "SCHEDULED", "READY", "PENDING",
    "SUSPENDED", "FAILED", "NOT_COMPATIBLE", "CANCELED", "SUCCEEDED",
]


def aggregate(tasks: list[dict[str, Any]]) -> str:
    present = {t["runStatus"] for t in tasks}
    return next((s for s in AGGREGATE_ORDER if s in present), "SUCCEEDED")


def all_tasks(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for s in job["steps"] for t in s["tasks"]]


def expand_template(template_text: str, template_type: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps and tasks of a job, as the service makes them: openjd-model decodes the
    template and instantiates it with the parameter values."""
    try:
        doc = ojd.document_string_to_object(
            document=template_text,
            document_type=ojd.DocumentType[template_type],
        )
        template = ojd.decode_job_template(template=doc)
        values = {}
        for name, union in parameters.items():
            (kind, value), = union.items()
            ptype = {"int": "INT", "float": "FLOAT", "string": "STRING", "path": "PATH"}.get(kind)
            if ptype is None:
                raise ApiError(400, "ValidationException", f"parameter {name}: {kind} values are not emulated", reason="OTHER")
            values[name] = ojd.ParameterValue(type=ojd.ParameterValueType(ptype), value=value)
        job = ojd.create_job(job_template=template, job_parameter_values=values)
    except ApiError:
        raise
    except Exception as e:  # the service answers a bad template with ValidationException
        raise ApiError(400, "ValidationException", f"invalid job template: {e}", reason="OTHER") from e
    steps = []
    for step in job.steps:
        step_id = "step-" + hex32()
        tasks = []
        space = step.parameterSpace
        combos = list(ojd.StepParameterSpaceIterator(space=space)) if space else [{}]
        for n, combo in enumerate(combos):
            params = {}
            for pname, pv in combo.items():
                kind = {"INT": "int", "FLOAT": "float", "STRING": "string", "PATH": "path"}.get(pv.type.value, "chunkInt")
                params[pname] = {kind: str(pv.value)}
            tasks.append({"taskId": f"task-{step_id[5:]}-{n}", "runStatus": "READY", "parameters": params})
        steps.append({"stepId": step_id, "name": step.name, "tasks": tasks})
    return steps


# ---------------------------------------------------------------------------------------
# Operations (deadline)


def op_get_farm(st: State, p: dict[str, Any]) -> dict[str, Any]:
    if p["farmId"] != FARM_ID:
        raise not_found("farm", p["farmId"])
    return {"farmId": FARM_ID, "displayName": "Emulated farm", "createdAt": iso(st.created), "createdBy": CREATED_BY}


def queue_body(st: State) -> dict[str, Any]:
    # No jobAttachmentSettings: the CLI then uploads nothing (no S3 needed).
    return {
        "farmId": FARM_ID, "queueId": QUEUE_ID, "displayName": "Emulated queue", "status": "IDLE",
        "defaultBudgetAction": "NONE", "createdAt": iso(st.created), "createdBy": CREATED_BY,
    }


def op_get_queue(st: State, p: dict[str, Any]) -> dict[str, Any]:
    st.queue(p["farmId"], p["queueId"])
    return queue_body(st)


def op_list_farms(st: State, p: dict[str, Any]) -> dict[str, Any]:
    return {"farms": [op_get_farm(st, {"farmId": FARM_ID})]}


def op_list_queues(st: State, p: dict[str, Any]) -> dict[str, Any]:
    if p["farmId"] != FARM_ID:
        raise not_found("farm", p["farmId"])
    q = queue_body(st)
    return {"queues": [{k: q[k] for k in ("farmId", "queueId", "displayName", "status", "defaultBudgetAction", "createdAt", "createdBy")}]}


def op_list_queue_environments(st: State, p: dict[str, Any]) -> dict[str, Any]:
    st.queue(p["farmId"], p["queueId"])
    return {"environments": []}


def op_create_job(st: State, p: dict[str, Any]) -> dict[str, Any]:
    st.queue(p["farmId"], p["queueId"])
    if "template" not in p:
        raise ApiError(400, "ValidationException", "template is required (sourceJobId is not emulated)", reason="OTHER")
    if "attachments" in p:
        raise ApiError(400, "ValidationException", "the emulated queue has no job attachments", reason="OTHER")
    steps = expand_template(p["template"], p["templateType"], p.get("parameters", {}))
    job_id = "job-" + hex32()
    doc = ojd.document_string_to_object(document=p["template"], document_type=ojd.DocumentType[p["templateType"]])
    target = p.get("targetTaskRunStatus", "READY")
    for s in steps:
        for t in s["tasks"]:
            t["runStatus"] = target
    job = {
        "jobId": job_id,
        "name": p.get("nameOverride") or doc.get("name", "job"),
        "description": p.get("descriptionOverride") or doc.get("description"),
        "lifecycleStatus": "CREATE_COMPLETE",
        "lifecycleStatusMessage": "Job creation complete",
        "priority": p["priority"],
        "createdAt": now(),
        "startedAt": None,
        "endedAt": None,
        "maxFailedTasksCount": p.get("maxFailedTasksCount"),
        "maxRetriesPerTask": p.get("maxRetriesPerTask"),
        "maxWorkerCount": p.get("maxWorkerCount"),
        "parameters": p.get("parameters"),
        "taskFailureRetryCount": 0,
        "steps": steps,
        "sessions": [],
        "createJobRequest": {k: v for k, v in p.items()},
    }
    with st.lock:
        st.jobs[job_id] = job
    return {"jobId": job_id}


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    tasks = all_tasks(job)
    out = {
        "jobId": job["jobId"], "name": job["name"], "lifecycleStatus": job["lifecycleStatus"],
        "lifecycleStatusMessage": job["lifecycleStatusMessage"], "priority": job["priority"],
        "createdAt": iso(job["createdAt"]), "createdBy": CREATED_BY,
        "startedAt": iso(job["startedAt"]), "endedAt": iso(job["endedAt"]),
        "taskRunStatus": job.get("taskRunStatusOverride") or aggregate(tasks),
        "taskRunStatusCounts": counts(tasks), "taskFailureRetryCount": job["taskFailureRetryCount"],
        "maxFailedTasksCount": job["maxFailedTasksCount"], "maxRetriesPerTask": job["maxRetriesPerTask"],
        "maxWorkerCount": job["maxWorkerCount"], "parameters": job["parameters"],
        "description": job["description"],
    }
    return {k: v for k, v in out.items() if v is not None}


def op_get_job(st: State, p: dict[str, Any]) -> dict[str, Any]:
    return job_view(st.job(p["farmId"], p["queueId"], p["jobId"]))


def op_search_jobs(st: State, p: dict[str, Any]) -> dict[str, Any]:
    if p["farmId"] != FARM_ID:
        raise not_found("farm", p["farmId"])
    jobs = [j for j in st.jobs.values() if QUEUE_ID in p["queueIds"]]
    jobs.sort(key=lambda j: j["createdAt"], reverse=True)
    offset, size = p["itemOffset"], p.get("pageSize", 100)
    page = jobs[offset : offset + size]
    summaries = []
    for j in page:
        v = job_view(j)
        v.pop("description", None)
        v["queueId"] = QUEUE_ID
        if "parameters" in v:
            v["jobParameters"] = v.pop("parameters")
        summaries.append(v)
    out: dict[str, Any] = {"jobs": summaries, "totalResults": len(jobs)}
    if offset + size < len(jobs):
        out["nextItemOffset"] = offset + size
    return out


def op_list_jobs(st: State, p: dict[str, Any]) -> dict[str, Any]:
    st.queue(p["farmId"], p["queueId"])
    keep = {"jobId", "name", "lifecycleStatus", "lifecycleStatusMessage", "priority", "createdAt", "createdBy",
            "startedAt", "endedAt", "taskRunStatus", "taskRunStatusCounts", "taskFailureRetryCount",
            "maxFailedTasksCount", "maxRetriesPerTask", "maxWorkerCount"}
    return {"jobs": [{k: v for k, v in job_view(j).items() if k in keep} for j in st.jobs.values()]}


def op_update_job(st: State, p: dict[str, Any]) -> dict[str, Any]:
    job = st.job(p["farmId"], p["queueId"], p["jobId"])
    with st.lock:
        target = p.get("targetTaskRunStatus")
        if target is not None:
            for t in all_tasks(job):
                if target == "PENDING" or t["runStatus"] not in TERMINAL:
                    t["runStatus"] = "READY" if target == "PENDING" else target
            job.pop("taskRunStatusOverride", None)
            if target in TERMINAL:
                job["endedAt"] = now()
        if "priority" in p:
            job["priority"] = p["priority"]
        job["lifecycleStatus"] = "UPDATE_SUCCEEDED"
        job["lifecycleStatusMessage"] = "Job update succeeded"
    return {}


def step_of(job: dict[str, Any], step_id: str) -> dict[str, Any]:
    for s in job["steps"]:
        if s["stepId"] == step_id:
            return s
    raise not_found("step", step_id)


def op_list_steps(st: State, p: dict[str, Any]) -> dict[str, Any]:
    job = st.job(p["farmId"], p["queueId"], p["jobId"])
    return {"steps": [
        {"stepId": s["stepId"], "name": s["name"], "lifecycleStatus": "CREATE_COMPLETE",
         "taskRunStatus": aggregate(s["tasks"]), "taskRunStatusCounts": counts(s["tasks"]),
         "createdAt": iso(job["createdAt"]), "createdBy": CREATED_BY}
        for s in job["steps"]]}


def op_list_tasks(st: State, p: dict[str, Any]) -> dict[str, Any]:
    job = st.job(p["farmId"], p["queueId"], p["jobId"])
    step = step_of(job, p["stepId"])
    out = []
    for t in step["tasks"]:
        row = {"taskId": t["taskId"], "runStatus": t["runStatus"], "createdAt": iso(job["createdAt"]),
               "createdBy": CREATED_BY, "failureRetryCount": 0}
        if t["parameters"]:
            row["parameters"] = t["parameters"]
        out.append(row)
    return {"tasks": out}


def op_update_task(st: State, p: dict[str, Any]) -> dict[str, Any]:
    job = st.job(p["farmId"], p["queueId"], p["jobId"])
    step = step_of(job, p["stepId"])
    task = next((t for t in step["tasks"] if t["taskId"] == p["taskId"]), None)
    if task is None:
        raise not_found("task", p["taskId"])
    with st.lock:
        # PENDING means requeue; a task without dependencies becomes READY at once.
        task["runStatus"] = "READY" if p["targetRunStatus"] == "PENDING" else p["targetRunStatus"]
        job.pop("taskRunStatusOverride", None)
        job["endedAt"] = None
    return {}


def session_view(job: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    return {"sessionId": s["sessionId"], "fleetId": "fleet-" + "0" * 31 + "1",
            "workerId": "worker-" + "0" * 31 + "1", "startedAt": iso(s["startedAt"]),
            "lifecycleStatus": "STARTED"}


def op_list_sessions(st: State, p: dict[str, Any]) -> dict[str, Any]:
    job = st.job(p["farmId"], p["queueId"], p["jobId"])
    return {"sessions": [session_view(job, s) for s in job["sessions"]]}


def op_get_session(st: State, p: dict[str, Any]) -> dict[str, Any]:
    job = st.job(p["farmId"], p["queueId"], p["jobId"])
    for s in job["sessions"]:
        if s["sessionId"] == p["sessionId"]:
            out = session_view(job, s)
            out["log"] = {"logDriver": "awslogs", "options": {
                "logGroupName": f"/aws/deadline/{FARM_ID}/{QUEUE_ID}", "logStreamName": s["sessionId"]}}
            return out
    raise not_found("session", p["sessionId"])


DEADLINE_OPS = {
    "GetFarm": op_get_farm, "GetQueue": op_get_queue, "ListFarms": op_list_farms,
    "ListQueues": op_list_queues, "ListQueueEnvironments": op_list_queue_environments,
    "CreateJob": op_create_job, "GetJob": op_get_job, "SearchJobs": op_search_jobs,
    "ListJobs": op_list_jobs, "UpdateJob": op_update_job, "ListSteps": op_list_steps,
    "ListTasks": op_list_tasks, "UpdateTask": op_update_task, "ListSessions": op_list_sessions,
    "GetSession": op_get_session,
}


# Operations (logs)


def op_get_log_events(st: State, p: dict[str, Any]) -> dict[str, Any]:
    group = p.get("logGroupName", "")
    for job in st.jobs.values():
        for s in job["sessions"]:
            if s["sessionId"] == p["logStreamName"] and group == f"/aws/deadline/{FARM_ID}/{QUEUE_ID}":
                events = s["events"]
                if "startTime" in p:
                    events = [e for e in events if e["timestamp"] >= p["startTime"]]
                if "endTime" in p:
                    events = [e for e in events if e["timestamp"] < p["endTime"]]
                limit = p.get("limit", 10000)
                events = events[:limit] if p.get("startFromHead") else events[-limit:]
                return {"events": events, "nextForwardToken": "f/end", "nextBackwardToken": "b/start"}
    raise ApiError(400, "ResourceNotFoundException", "The specified log stream does not exist.")


LOGS_OPS = {"GetLogEvents": op_get_log_events}


# ---------------------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    server_version = "deadline-emulator"
    protocol_version = "HTTP/1.1"

    state: State
    deadline: Service
    logs: Service

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, headers: Optional[dict[str, str]] = None, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _record(self, **entry: Any) -> None:
        with self.state.lock:
            self.state.calls.append(entry)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if url.path.startswith("/_control/"):
            return self._control(method, url.path, body)
        auth = self.headers.get("Authorization", "")
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request", auth)
        service = scope.group(2) if scope else None
        if service == "logs" or (self.headers.get("X-Amz-Target", "").startswith("Logs_")):
            return self._json_protocol(body, service)
        if service != "deadline":
            self._record(service=service, operation=None, method=method, path=url.path, status=400,
                         error=f"unexpected request (no SigV4 scope for deadline): {method} {url.path}")
            return self._send(400, {"message": "not an emulated service"}, {"x-amzn-ErrorType": "UnknownOperationException"})
        found = self.deadline.route(method, url.path)
        if found is None:
            self._record(service="deadline", operation=None, method=method, path=url.path, status=404,
                         error=f"no operation of the model has {method} {url.path}")
            return self._send(404, {"message": f"no route {method} {url.path}"}, {"x-amzn-ErrorType": "UnknownOperationException"})
        op_name, labels = found
        op = self.deadline.model.operation_model(op_name)
        params: dict[str, Any] = {}
        errors: list[str] = []
        members = op.input_shape.members if op.input_shape else {}
        query = parse_qs(url.query, keep_blank_values=True)
        for name, shape in members.items():
            loc, wire = shape.serialization.get("location"), shape.serialization.get("name", name)
            if loc == "uri" and wire in labels:
                params[name] = coerce(shape, labels[wire])
            elif loc == "querystring" and wire in query:
                vals = query[wire]
                params[name] = [coerce(shape.member, v) for v in vals] if shape.type_name == "list" else coerce(shape, vals[-1])
            elif loc == "header" and self.headers.get(wire) is not None:
                params[name] = coerce(shape, self.headers[wire])
        if body:
            try:
                doc = json.loads(body)
            except ValueError as e:
                doc = {}
                errors.append(f"body is not JSON: {e}")
            for k, v in (doc.items() if isinstance(doc, dict) else []):
                if k in members and members[k].serialization.get("location") is None:
                    params[k] = v
                else:
                    errors.append(f"body member {k} is not a body member of {op_name}")
        if op.input_shape is not None:
            report = botocore.validate.ParamValidator().validate(params, op.input_shape)
            if report.has_errors():
                errors.append(report.generate_report())
            check(op.input_shape, params, op_name, errors, wire=False)
        handler = DEADLINE_OPS.get(op_name)
        if errors:
            msg = "; ".join(errors)
            self._record(service="deadline", operation=op_name, method=method, path=url.path, status=400, error=msg, params=_loggable(params))
            return self._error(ApiError(400, "ValidationException", msg, reason="OTHER"))
        if handler is None:
            self._record(service="deadline", operation=op_name, method=method, path=url.path, status=501,
                         error=f"{op_name} is not emulated", params=_loggable(params))
            return self._error(ApiError(400, "ValidationException", f"{op_name} is not emulated", reason="OTHER"))
        try:
            result = handler(self.state, params)
        except ApiError as e:
            self._record(service="deadline", operation=op_name, method=method, path=url.path, status=e.status, error=e.code, params=_loggable(params))
            return self._error(e)
        self._respond(op, result, "deadline", op_name, method, url.path, params)

    def _respond(self, op: botocore.model.OperationModel, result: dict[str, Any], service: str, op_name: str,
                 method: str, path: str, params: dict[str, Any]) -> None:
        out_errors: list[str] = []
        if op.output_shape is not None:
            check(op.output_shape, result, f"{op_name} response", out_errors, wire=True)
        if out_errors:
            msg = "emulator response breaks the model: " + "; ".join(out_errors)
            self._record(service=service, operation=op_name, method=method, path=path, status=500, error=msg)
            return self._send(500, {"message": msg}, {"x-amzn-ErrorType": "InternalServerErrorException"})
        self._record(service=service, operation=op_name, method=method, path=path, status=op.http.get("responseCode", 200), params=_loggable(params))
        ctype = "application/x-amz-json-1.1" if service == "logs" else "application/json"
        self._send(op.http.get("responseCode", 200), result, content_type=ctype)

    def _error(self, e: ApiError) -> None:
        body = {"message": e.message, **e.extra}
        self._send(e.status, body, {"x-amzn-ErrorType": e.code})

    def _json_protocol(self, body: bytes, service: Optional[str]) -> None:
        target = self.headers.get("X-Amz-Target", "")
        op_name = target.split(".", 1)[-1]
        prefix = self.logs.model.metadata.get("targetPrefix")
        if service != "logs" or not target.startswith(f"{prefix}.") or op_name not in self.logs.model.operation_names:
            self._record(service=service, operation=op_name, method="POST", path="/", status=400, error=f"unexpected logs request {target!r}")
            return self._send(400, {"__type": "UnknownOperationException", "message": target}, content_type="application/x-amz-json-1.1")
        op = self.logs.model.operation_model(op_name)
        errors: list[str] = []
        try:
            params = json.loads(body or b"{}")
        except ValueError as e:
            params, errors = {}, [f"body is not JSON: {e}"]
        report = botocore.validate.ParamValidator().validate(params, op.input_shape)
        if report.has_errors():
            errors.append(report.generate_report())
        check(op.input_shape, params, op_name, errors, wire=False)
        if errors or op_name not in LOGS_OPS:
            msg = "; ".join(errors) or f"{op_name} is not emulated"
            self._record(service="logs", operation=op_name, method="POST", path="/", status=400, error=msg)
            return self._send(400, {"__type": "InvalidParameterException", "message": msg}, content_type="application/x-amz-json-1.1")
        try:
            result = LOGS_OPS[op_name](self.state, params)
        except ApiError as e:
            self._record(service="logs", operation=op_name, method="POST", path="/", status=e.status, error=e.code)
            return self._send(e.status, {"__type": e.code, "message": e.message}, content_type="application/x-amz-json-1.1")
        self._respond(op, result, "logs", op_name, "POST", "/", params)

    def _control(self, method: str, path: str, body: bytes) -> None:
        st = self.state
        parts = path.strip("/").split("/")
        try:
            doc = json.loads(body) if body else {}
            if method == "GET" and parts == ["_control", "calls"]:
                with st.lock:
                    return self._send(200, st.calls)
            if len(parts) >= 3 and parts[1] == "jobs":
                job = st.jobs.get(parts[2])
                if job is None:
                    return self._send(404, {"message": f"no job {parts[2]}"})
                if method == "GET" and len(parts) == 3:
                    view = job_view(job)
                    view["createJobRequest"] = job["createJobRequest"]
                    view["steps"] = job["steps"]
                    return self._send(200, view)
                if method == "POST" and parts[3:] == ["status"]:
                    return self._send(200, self._set_status(job, doc))
                if method == "POST" and parts[3:] == ["log"]:
                    with st.lock:
                        if not job["sessions"]:
                            job["sessions"].append({"sessionId": "session-" + hex32(), "startedAt": now(), "events": []})
                        s = job["sessions"][-1]
                        for line in doc["lines"]:
                            ms = int(now().timestamp() * 1000)
                            s["events"].append({"timestamp": ms, "message": line, "ingestionTime": ms})
                    return self._send(200, {"sessionId": s["sessionId"]})
            return self._send(404, {"message": f"no control endpoint {method} {path}"})
        except (KeyError, ValueError, TypeError) as e:
            return self._send(400, {"message": f"bad control request: {e!r}"})

    def _set_status(self, job: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        with self.state.lock:
            life = doc.get("lifecycleStatus")
            run = doc.get("taskRunStatus")
            if life is not None:
                if life not in LIFECYCLE_STATUSES:
                    raise ValueError(f"{life} is not a JobLifecycleStatus")
                job["lifecycleStatus"] = life
            if "lifecycleStatusMessage" in doc:
                job["lifecycleStatusMessage"] = doc["lifecycleStatusMessage"]
            if run is not None:
                if run not in TASK_RUN_STATUSES:
                    raise ValueError(f"{run} is not a TaskRunStatus")
                for t in all_tasks(job):
                    t["runStatus"] = run
                # A job without tasks still reports the word set.
                job["taskRunStatusOverride"] = run if not all_tasks(job) else None
                if run not in ("PENDING", "READY") and job["startedAt"] is None:
                    job["startedAt"] = now()
                job["endedAt"] = now() if run in TERMINAL else None
        return job_view(job)


def _loggable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "template"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = ap.parse_args()
    if ojd is None:
        print("openjd-model is not importable: install openjd-cli in this venv", file=sys.stderr)
        return 2
    deadline = Service("deadline")
    logs = Service("logs")
    TASK_RUN_STATUSES.extend(deadline.model.shape_for("TaskRunStatus").enum)
    LIFECYCLE_STATUSES.extend(deadline.model.shape_for("JobLifecycleStatus").enum)
    Handler.state = State()
    Handler.deadline = deadline
    Handler.logs = logs
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    print(f"deadline emulator on 127.0.0.1:{server.server_address[1]}: {FARM_ID} {QUEUE_ID}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
