"""The command line's value types: finite, in range, bounded before anything is allocated."""

from __future__ import annotations

import argparse
import os

import pytest

from edgeship_runtime import flags


@pytest.mark.parametrize("parse,text,message", [
    (flags.count(1, 1024), "0", "must be from 1 to 1024"),
    (flags.count(1, 1024), "1.5", "is not a whole number"),
    (flags.seconds(), "1e308", "must be from 0 to 86400 seconds"),
    (flags.seconds(), "nan", "is not a finite number"),
    (flags.seconds(positive=True, why="a reason"), "0", r"must be greater than 0 \(a reason\)"),
    (flags.rate, "-inf", "is not a finite number"),
    (flags.counts(1, 64, "a runner count"), "2,0", "'0' is not a runner count from 1 to 64"),
    (flags.frame_size, "100000x100000", "larger than 8192x8192"),
    (flags.frame_size, "640*480", "is not WIDTHxHEIGHT"),
])
def test_a_value_out_of_range_is_refused(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


def test_good_values_pass_through():
    assert flags.count(0)("0") == 0 and flags.seconds()("0") == 0.0 and flags.rate("30") == 30.0
    assert flags.counts(1, 1024, "a batch size")("1,,4") == [1, 4] and flags.frame_size("8192X8192") == (8192, 8192)


def test_an_output_path_is_judged_before_any_work(tmp_path):
    assert flags.output_problem(str(tmp_path / "new.json")) is None
    assert "does not exist" in flags.output_problem(str(tmp_path / "no" / "new.json"))
    assert flags.output_problem(str(tmp_path / "no" / "new.json"), may_create_folder=True) is None
    assert "is a folder" in flags.output_problem(str(tmp_path))
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    assert "symbolic link" in flags.output_problem(str(tmp_path / "link"))
    os.mkfifo(tmp_path / "fifo")
    assert "special file" in flags.output_problem(str(tmp_path / "fifo"))


def test_the_parser_says_what_is_wrong_in_one_line(capsys):
    parser = flags.OneLineParser(prog="edgeship-runtime")
    parser.add_argument("--max-s", type=flags.seconds(positive=True, why="seconds after which no new run starts"))
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--max-s", "0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "edgeship-runtime: error: --max-s 0.0 must be greater than 0 (seconds after which no new run starts)\n"
