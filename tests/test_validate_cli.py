"""``catalog validate FILES...``: offline lint with the server's rules, ``file:line: message``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.cli import main
from tests.conftest import component, location, processing_errors, settle, write_yaml

GOOD = component("good")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    status = main(["validate", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def test_a_valid_file_passes(capsys, tmp_path):
    path = write_yaml(tmp_path / "catalog-info.yaml", GOOD, location("here", "./catalog-info.yaml"))
    status, out, err = run(capsys, str(path))
    assert (status, out) == (0, [])
    assert "1 file(s) valid" in err
    assert run(capsys, "-q", str(path))[2] == ""


def test_each_problem_names_file_and_line(capsys, tmp_path):
    path = tmp_path / "catalog-info.yaml"
    documents = [
        GOOD,
        component("bad name"),
        component("no-owner", owner=None),
        component("deps", dependsOn=["kindless"]),
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component"},
        component("good"),
    ]
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False) + "---\n- a list\n")
    lines = [i + 1 for i, text in enumerate(path.read_text().splitlines()) if text == "---"]
    starts = [1, *(n + 1 for n in lines)]  # where each document begins
    status, out, _ = run(capsys, str(path))
    assert status == 1
    assert out == [
        f"{path}:{starts[1]}: InputError: Policy check failed for component:default/bad name; "
        'caused by Error: "metadata.name" is not valid; expected a string that is sequences '
        "of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total but found "
        '"bad name". To learn more about catalog file format, visit: https://github.com/'
        "backstage/backstage/blob/master/docs/architecture-decisions/"
        "adr002-default-catalog-file-format.md",
        f"{path}:{starts[2]}: InputError: Processor BuiltinKindsEntityProcessor threw an error "
        "while validating the entity component:default/no-owner; caused by TypeError: /spec "
        "must have required property 'owner' - missingProperty: owner",
        f"{path}:{starts[3]}: InputError: Processor BuiltinKindsEntityProcessor threw an error "
        'while postprocessing; caused by Error: Entity reference "kindless" had missing or '
        'empty kind (e.g. did not start with "component:" or similar)',
        f"{path}:{starts[4]}: InputError: Entity envelope failed validation before processing; "
        "caused by TypeError: <root> must have required property 'metadata' - "
        "missingProperty: metadata",
        f"{path}:{starts[5]}: component:default/good is also defined at {path}:1",
        f"{path}:{starts[6]}: Expected object at root, got object",
    ]


def test_messages_are_the_ones_the_server_stores(capsys, make_catalog, tmp_path):
    bad = [component("no-owner", owner=None), component("deps", dependsOn=["kindless"])]
    path = write_yaml(tmp_path / "catalog-info.yaml", *bad)
    catalog = make_catalog([path])
    settle(catalog)
    stored = processing_errors(catalog)
    server = sorted(
        f"{e['name']}: {e['message']}"
        for ref in ("component:default/no-owner", "component:default/deps")
        for e in stored[ref]
    )
    _, out, _ = run(capsys, str(path))
    assert sorted(line.split(": ", 1)[1] for line in out) == server


def test_yaml_errors_and_hostile_yaml_point_at_their_line(capsys, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: [x\n")
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(
        'x: 1\n---\na: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
            for i in range(9)
        )
    )
    status, out, _ = run(capsys, str(broken), str(laughs))
    assert status == 1
    assert out[0].startswith(f"{broken}:5: YAML error: while parsing a flow sequence")
    assert out[1].startswith(f"{laughs}:1: InputError: Entity envelope failed validation")
    assert out[2] == (
        f"{laughs}:3: YAML error: the document has more than 100000 nodes with its aliases "
        "expanded (catalog.limits.yamlNodes)"
    )


def test_placeholders_and_targets_are_checked_on_disk_not_on_the_network(capsys, tmp_path):
    (tmp_path / "openapi.yaml").write_text("openapi: 3.0.0\n")
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "local"},
        "spec": {
            "type": "openapi",
            "lifecycle": "production",
            "owner": "team-a",
            "definition": {"$text": "./openapi.yaml"},
        },
    }
    remote = {**api, "metadata": {"name": "remote"}}
    remote["spec"] = {**api["spec"], "definition": {"$text": "http://192.0.2.1/openapi.yaml"}}
    missing = {**api, "metadata": {"name": "missing"}}
    missing["spec"] = {**api["spec"], "definition": {"$text": "./nope.yaml"}}
    targets = location("loc", "./openapi.yaml", "./absent.yaml", "https://example.com/x.yaml")
    path = write_yaml(tmp_path / "catalog-info.yaml", api, remote, missing, targets)
    status, out, _ = run(capsys, str(path))
    assert status == 1
    assert len(out) == 2, out
    assert "Placeholder $text could not read location ./nope.yaml" in out[0]
    assert out[1].endswith(f"NotFoundError: file {tmp_path / 'absent.yaml'} does not exist")


def test_folders_hold_catalog_files_and_other_yaml(capsys, tmp_path):
    write_yaml(tmp_path / "repo" / "catalog-info.yaml", GOOD)
    write_yaml(tmp_path / "repo" / "svc" / "catalog-info.yml", component("svc", owner=None))
    write_yaml(tmp_path / "repo" / "more.yaml", component("more"))
    (tmp_path / "repo" / "openapi.yaml").write_text("openapi: 3.0.0\ninfo: {title: x}\n")
    (tmp_path / "repo" / "deploy.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n")
    status, out, err = run(capsys, str(tmp_path / "repo"))
    assert status == 1
    assert len(out) == 1 and "catalog-info.yml:1:" in out[0] and "owner" in out[0]
    assert "1 problem(s) in 1 of 3 file(s)" in err


def test_catalog_rules_and_limits_come_from_the_config(capsys, tmp_path):
    config = tmp_path / "app-config.yaml"
    config.write_text(
        "catalog:\n  rules: [{allow: [Component]}]\n  limits: {documentsPerFile: 2}\n"
    )
    api = component("not-a-component")
    api["kind"] = "Group"
    api["spec"] = {"type": "team", "children": []}
    path = write_yaml(tmp_path / "catalog-info.yaml", GOOD, api)
    status, out, _ = run(capsys, "--config", str(config), str(path))
    assert status == 1
    assert out == [
        f"{path}:10: NotAllowedError: Entity group:default/not-a-component at file:{path} is not "
        "of an allowed kind (catalog.rules)"
    ]
    many = write_yaml(tmp_path / "many.yaml", *(component(f"m{i}") for i in range(3)))
    status, out, _ = run(capsys, "--config", str(config), str(many))
    assert out[-1].endswith(
        "the stream has more than 2 documents (catalog.limits.documentsPerFile)"
    )


def test_usage_errors_exit_2(capsys, tmp_path):
    assert run(capsys, str(tmp_path / "missing.yaml"))[0] == 2
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("catalog:\n  limits: {yamlNodes: -1}\n")
    path = write_yaml(tmp_path / "ok.yaml", GOOD)
    status, _, err = run(capsys, "--config", str(bad_config), str(path))
    assert status == 2
    assert "catalog.limits.yamlNodes must be a whole number >= 1" in err
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "the following arguments are required: FILE" in result.stderr


def test_the_sample_catalog_is_valid(capsys):
    repo = Path(__file__).resolve().parent.parent
    status, out, _ = run(capsys, str(repo / "catalog"))
    assert (status, out) == (0, [])
