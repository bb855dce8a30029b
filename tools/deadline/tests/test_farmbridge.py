"""The FarmBridge Deadline plug-in, loaded as Deadline loads it (GetDeadlinePlugin() from
FarmBridge.py) on a stand-in of Deadline's plug-in API, running tasks through the real
`farm run-task`.

Run with:  FARM_BIN=target/debug/farm python3 -m pytest tools/deadline/tests
Tests that run tasks skip (with that message) when FARM_BIN is unset.
"""

import configparser
import importlib.util
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_DIR = os.path.join(os.path.dirname(HERE), "FarmBridge")
sys.path.insert(0, os.path.join(HERE, "stand_in"))

from Deadline.Plugins import Worker, split_arguments  # noqa: E402  (the stand-in)


def load_plugin_module():
    spec = importlib.util.spec_from_file_location(
        "FarmBridge", os.path.join(PLUGIN_DIR, "FarmBridge.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def farm_bin():
    path = os.environ.get("FARM_BIN")
    if not path:
        pytest.skip("FARM_BIN is unset: build farm (cargo build -p farm) and set FARM_BIN to it")
    path = os.path.abspath(path)
    assert os.path.isfile(path), "FARM_BIN=%s does not exist" % path
    return path


def one_line(request):
    """The request as the Web Service profile and plugin_info.job carry it."""
    return json.dumps(request, ensure_ascii=True, separators=(",", ":"))


def run(tmp_path, farm_path, request, task, plugin_info=None, aux=()):
    module = load_plugin_module()
    plugin = module.GetDeadlinePlugin()
    worker = Worker(str(tmp_path / "worker"), config={"FarmExecutable": farm_path})
    os.makedirs(worker.temp_dir, exist_ok=True)
    info = {"Request": one_line(request)} if plugin_info is None else plugin_info
    failed, lines = worker.render_task(plugin, info, task, aux_files=aux)
    module.CleanupDeadlinePlugin(plugin)
    return plugin, failed, lines


def test_a_chunk_renders_its_frames_and_reports_progress(tmp_path, farm_bin):
    out = tmp_path / "out"
    out.mkdir()
    request = {
        "name": "shot 'a' \"b\"",
        "frames": "1-10",
        "chunk_size": 4,
        "environment": {"GREETING": "it's $(not) `run`\nline 2"},
        "working_directory": str(out),
        "commands": [
            ["sh", "-c", 'printf "%s\\n" "$GREETING" > "f$0.txt"; echo "ALF_PROGRESS 50%"', "{frame}"],
        ],
    }
    plugin, failed, lines = run(tmp_path, farm_bin, request, (1, 5, 8))
    assert failed is None, lines
    assert sorted(os.listdir(out)) == ["f5.txt", "f6.txt", "f7.txt", "f8.txt"]
    assert (out / "f7.txt").read_text() == "it's $(not) `run`\nline 2\n"
    assert lines[-1] == "farm: task 1 succeeded"
    assert plugin.progress[0] == 0 and 50.0 in plugin.progress and plugin.progress[-1] == 100
    assert plugin.status[-1] == "farm: task 1 succeeded"
    # The temporary request file is removed after the task.
    assert not os.path.exists(plugin.RequestPath)


def test_a_failing_step_fails_the_task_with_the_steps_message(tmp_path, farm_bin):
    request = {
        "name": "x",
        "frames": "1-4",
        "chunk_size": 2,
        "commands": [["sh", "-c", "echo rendering $0", "{frame}"], ["sh", "-c", "exit 3"], ["echo", "never"]],
    }
    plugin, failed, lines = run(tmp_path, farm_bin, request, (0, 1, 2))
    assert failed == "farm: task 0 failed: step 1 (`sh`, frame 1): exit code 3"
    assert "rendering 1" in lines and "never" not in lines and "rendering 2" not in lines


def test_a_task_chunked_differently_from_the_request_renders_nothing(tmp_path, farm_bin):
    out = tmp_path / "out"
    out.mkdir()
    request = {"name": "x", "frames": "1-10", "chunk_size": 5, "working_directory": str(out),
               "commands": [["touch", "{frame}"]]}
    # Deadline's job was edited to chunk size 4: its task 1 is frames 5-8.
    plugin, failed, lines = run(tmp_path, farm_bin, request, (1, 5, 8))
    assert failed is not None and "exited with status 4" in failed, (failed, lines)
    assert any("chunked differently" in line for line in lines), lines
    assert os.listdir(out) == []


def test_the_request_may_come_as_an_auxiliary_file(tmp_path, farm_bin):
    request = {"name": "x", "commands": [["echo", "from aux"]]}
    aux = tmp_path / "request.json"
    aux.write_text(json.dumps(request, indent=2))
    plugin, failed, lines = run(tmp_path, farm_bin, request, (0, 0, 0), plugin_info={}, aux=[str(aux)])
    assert failed is None, lines
    assert lines == ["from aux", "farm: task 0 succeeded"]


def test_a_job_without_a_request_fails_with_a_clear_message(tmp_path):
    plugin, failed, lines = run(tmp_path, sys.executable, None, (0, 0, 0), plugin_info={})
    assert "carries no farm request" in failed and "request.json" in failed


def test_a_missing_farm_binary_fails_the_task_naming_where_it_looked(tmp_path):
    missing = str(tmp_path / "no" / "farm")
    plugin, failed, lines = run(tmp_path, missing + ";" + missing + "2", {"name": "x", "commands": [["true"]]}, (0, 0, 0))
    assert failed.startswith("the farm executable was not found on this Worker"), failed
    assert missing in failed and "FarmExecutable" in failed
    assert lines == []


def test_arguments_survive_deadlines_command_line_splitting():
    module = load_plugin_module()
    for text in ["plain", "with space", 'quote"inside', "trailing\\", "back\\\\slash \"q\"", ""]:
        assert split_arguments(module.quote_argument(text)) == [text], text


def test_param_and_options_files_are_well_formed():
    for name in ["FarmBridge.param", "FarmBridge.options"]:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        with open(os.path.join(PLUGIN_DIR, name), encoding="utf-8") as handle:
            parser.read_file(handle)
        for section in parser.sections():
            assert {"Type", "Label", "Category", "Index", "Description"} <= set(parser[section]), (name, section)
    param = configparser.ConfigParser(interpolation=None)
    param.optionxform = str
    param.read(os.path.join(PLUGIN_DIR, "FarmBridge.param"))
    assert param["FarmExecutable"]["Type"] == "multilinemultifilename"
    options = configparser.ConfigParser(interpolation=None)
    options.optionxform = str
    options.read(os.path.join(PLUGIN_DIR, "FarmBridge.options"))
    assert set(options.sections()) == {"Request", "RequestFile"}
