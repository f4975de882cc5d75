"""Per-operator profiles of real converted models: an OpenVINO IR (digits, int8) through
`edgeship-runtime profile` inside the openvino image, as a board runs it, and in the main job's
controller row on this machine, which the report's per-operator tables read; an MNN model
(digits, fp16) through MNN's op callbacks inside the mnn image."""

from __future__ import annotations

import json
import shutil

from tests.container.targets.test_mnn import board_runtime as mnn_runtime
from tests.container.targets.test_mnn import mnn_image  # noqa: F401  (a fixture)
from tests.container.targets.test_openvino import board_runtime, openvino_image  # noqa: F401  (a fixture)


def test_an_openvino_ir_is_profiled_on_a_board_and_in_the_main_jobs_row(convert_example, openvino_image, docker_client, tmp_path):  # noqa: F811
    artifact = convert_example("digits", "openvino", "int8")
    code, out, err = board_runtime(docker_client, openvino_image, artifact, "profile", "/artifact", "--runs", "5", "--threads", "1")
    assert code == 0, err
    board = json.loads(out)
    print(json.dumps({key: board[key] for key in ("profiler", "nodes", "total_ms", "top", "by_type")}, indent=1))
    assert board["available"] is True and "PERF_COUNT" in board["profiler"] and board["runs"] == 5
    assert board["top"] and all(0 < entry["share"] <= 1 and entry["ms"] > 0 for entry in board["top"])
    assert {"Convolution", "FullyConnected"} & {entry["type"] for entry in board["by_type"]}

    from edgeship.main_job import conversion_row

    copy = tmp_path / "artifacts" / artifact.name
    shutil.copytree(artifact, copy)
    row = conversion_row(copy, 1.0)
    host = row["host_profile"]
    assert row["host_check_passed"] is True and host["available"] is True and host["backend"] == "openvino"
    # the same IR on the same runtime: the same operators carry the time, here as on the board
    assert {entry["type"] for entry in host["by_type"]} & {entry["type"] for entry in board["by_type"]}


def test_an_mnn_model_is_profiled_through_mnns_op_callbacks_on_a_board(convert_example, mnn_image, docker_client):  # noqa: F811
    artifact = convert_example("digits", "mnn", "fp16")
    code, out, err = mnn_runtime(docker_client, mnn_image, artifact, "profile", "/artifact", "--runs", "5", "--threads", "1")
    assert code == 0, err
    board = json.loads(out)
    print(json.dumps({key: board[key] for key in ("profiler", "nodes", "total_ms", "top", "by_type")}, indent=1))
    assert board["available"] is True and "runSessionWithCallBackInfo" in board["profiler"] and board["runs"] == 5
    assert board["top"] and all(0 <= entry["share"] <= 1 for entry in board["top"]) and board["total_ms"] > 0
    assert "Convolution" in {entry["type"] for entry in board["by_type"]}
