"""``nbprod lineage PATH``: the stage, commit, params, input hashes and environment behind an output,
each fact checked against dvc.lock and the working tree; every mismatch is stated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..core.errors import NbprodError
from ..core.project import Project
from ..core.stagerun import StageRun, read_stage_run
from ..core import gitrepo
from ..core.dvccache import LockedStage, cache_dir, current_md5, expand, md5_file, parse_lock


@dataclass
class Fact:
    name: str
    value: str
    ok: bool | None          # None: nothing to check it against
    detail: str = ""


@dataclass
class Lineage:
    path: str
    stage: str
    facts: list[Fact] = field(default_factory=list)

    @property
    def mismatches(self) -> list[Fact]:
        return [f for f in self.facts if f.ok is False]

    def lines(self) -> list[str]:
        origin = self.stage if self.stage.startswith("(") else f"produced by stage {self.stage}"
        lines = [f"{self.path}: {origin}"]
        for fact in self.facts:
            mark = {True: "ok", False: "MISMATCH", None: "--"}[fact.ok]
            lines.append(f"  {mark:8} {fact.name}: {fact.value}" + (f"  ({fact.detail})" if fact.detail else ""))
        count = len(self.mismatches)
        lines.append("Every fact matches what DVC recorded." if not count else
                     f"{count} mismatch(es): the file or its inputs changed since DVC recorded them.")
        return lines

    def to_dict(self) -> dict:
        return {"path": self.path, "stage": self.stage, "facts": [asdict(f) for f in self.facts],
                "mismatches": len(self.mismatches)}


def lineage(project: Project, path: Path | str) -> Lineage:
    root = project.root
    target = Path(path)
    target = (target if target.is_absolute() else Path.cwd() / target).resolve()
    try:
        rel = target.relative_to(root).as_posix()
    except ValueError:
        raise NbprodError("is outside the project", path, fix="give a path inside the project") from None
    lock_file = root / "dvc.lock"
    if not lock_file.is_file():
        raise NbprodError("no dvc.lock: nothing has run yet", root, fix="run 'nbprod run' first")
    stages = parse_lock(lock_file.read_text(encoding="utf-8"))
    stage, out, locked = _producer(stages, rel, cache_dir(root))
    if stage is None:
        source = _data_source(root, rel)
        if source is not None:
            return source
        raise NbprodError("is not an output of any stage in dvc.lock", rel,
                          fix="give a path listed under outs in dvc.lock (a model, metrics file or executed notebook)")
    result = Lineage(rel, stage.name)
    facts = result.facts
    facts.append(_stage_fact(root, stage))
    now = md5_file(target) if target.is_file() else current_md5(root, out, locked) if target.is_dir() else None
    facts.append(Fact("output md5", locked, now == locked,
                      "" if now == locked else ("missing from the working tree" if now is None
                                                else f"the file now has md5 {now}")))
    run = _executed_notebook(root, stage)
    facts += _commit_facts(root, run)
    facts += _param_facts(root, stage, run)
    facts += _input_facts(root, stage, stages)
    facts += _schema_facts(root, stage, stages)
    facts += _environment_facts(run)
    registered = _registered_in(root, project, out, stage.outs.get(out, ""))
    if registered:
        facts.append(Fact("registry", registered, None))
        facts += _fairness_facts(root, project, out, stage.outs.get(out, ""))
    return result


def _fairness_facts(root: Path, project: Project, out: str, md5: str) -> list[Fact]:
    """The fairness results approve recorded with each version that holds this output."""
    from ..fairness.compare import fairness_line
    from . import registry
    from .settings import load_config

    try:
        model = load_config(project).model_name
    except NbprodError:
        model = "model"
    facts = []
    for version in registry.versions(root, model):
        text = gitrepo.show_file(root, version.commit, "dvc.lock")
        locked = parse_lock(text) if text else {}
        line = fairness_line(version.record.get("fairness"))
        if line and any(s.outs.get(out) == md5 for s in locked.values()):
            facts.append(Fact("fairness", f"{version.tag}: {line[len('fairness: '):]}", None))
    return facts


def _producer(stages: dict[str, LockedStage], rel: str, cache: Path):
    for stage in stages.values():
        for out, md5 in stage.outs.items():
            if rel == out:
                return stage, out, md5
            if rel.startswith(out + "/") and md5.endswith(".dir"):
                for file_path, file_md5 in expand(cache, out, md5):
                    if file_path == rel:
                        return stage, out, file_md5
                raise NbprodError(f"is inside output {out} of stage {stage.name} but not in its dvc.lock entry",
                                  rel, fix=f"give {out} or a file the stage wrote")
    return None, None, None


def _stage_fact(root: Path, stage: LockedStage) -> Fact:
    try:
        declared = (yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages", {})
    except (OSError, yaml.YAMLError):
        declared = {}
    spec = declared.get(stage.name)
    if spec is None:
        return Fact("stage", f"{stage.name} ({stage.cmd})", False, "dvc.yaml no longer has this stage")
    same = str(spec.get("cmd")) == stage.cmd
    return Fact("stage", f"{stage.name} ({stage.cmd})", same, "" if same else f"dvc.yaml now runs {spec.get('cmd')!r}")


def _executed_notebook(root: Path, stage: LockedStage) -> dict | None:
    """The executed notebook of the run dvc.lock records, when its bytes are that run's."""
    for out, md5 in stage.outs.items():
        if out.endswith(".ipynb") and (root / out).is_file():
            record = read_stage_run(root / out)
            if record is None:
                continue
            return {"path": out, "matches_lock": md5_file(root / out) == md5, "record": record}
    return None


def _commit_facts(root: Path, run: dict | None) -> list[Fact]:
    facts = []
    last = gitrepo.git(root, "log", "-1", "--format=%H", "--", "dvc.lock", check=False)
    dirty = bool(gitrepo.git(root, "status", "--porcelain", "--", "dvc.lock", check=False))
    if last:
        facts.append(Fact("commit recording dvc.lock", last, not dirty,
                          "dvc.lock has uncommitted changes: this run is not in a commit yet" if dirty else ""))
    else:
        facts.append(Fact("commit recording dvc.lock", "none", False, "dvc.lock was never committed"))
    if run:
        record: StageRun = run["record"]
        value = f"{record.commit}" + (" (with uncommitted changes)" if record.dirty else "")
        facts.append(Fact("commit the stage ran at", value, run["matches_lock"],
                          f"from {run['path']}" if run["matches_lock"] else
                          f"{run['path']} is not the executed notebook dvc.lock records"))
    return facts


def _param_facts(root: Path, stage: LockedStage, run: dict | None) -> list[Fact]:
    facts = []
    for params_file, values in stage.params.items():
        try:
            current = yaml.safe_load((root / params_file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            current = {}
        for key, value in sorted(values.items()):
            now = current
            for part in key.split("."):
                now = now.get(part) if isinstance(now, dict) else None
            detail = "" if now == value else f"{params_file} now has {key} = {now!r}"
            if run and run["matches_lock"]:
                used = run["record"].params.get(key.split(".")[-1], value)
                if used != value:
                    detail = (detail + "; " if detail else "") + f"the executed notebook used {used!r}"
            facts.append(Fact(f"param {key}", repr(value), not detail, detail))
    return facts


def _input_facts(root: Path, stage: LockedStage, stages: dict[str, LockedStage]) -> list[Fact]:
    producers = {out: s.name for s in stages.values() for out in s.outs}
    facts = []
    for dep, md5 in sorted(stage.deps.items()):
        now = current_md5(root, dep, md5)
        origin = f"from stage {producers[dep]}" if dep in producers else "source"
        if now == md5:
            facts.append(Fact(f"input {dep}", md5, True, origin))
        else:
            facts.append(Fact(f"input {dep}", md5, False,
                              f"{origin}; " + ("missing" if now is None else f"now md5 {now}: changed since the run")))
    return facts


def _schema_facts(root: Path, stage: LockedStage, stages: dict[str, LockedStage]) -> list[Fact]:
    """The data contracts this output's stage, or any stage upstream of it, validated against."""
    from ..contracts.schemas import is_schema_path

    producers = {out: s for s in stages.values() for out in s.outs}
    seen, todo, facts = set(), [stage], []
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        for dep, md5 in sorted(current.deps.items()):
            if dep in producers:
                todo.append(producers[dep])
            elif is_schema_path(dep):
                now = current_md5(root, dep, md5)
                where = "" if current is stage else f"validated in stage {current.name}; "
                facts.append(Fact(f"schema {dep}", md5, now == md5,
                                  where + ("unchanged since the run" if now == md5 else
                                           "missing" if now is None else f"now md5 {now}: edited since the run")))
    return facts


def _environment_facts(run: dict | None) -> list[Fact]:
    if not run:
        return [Fact("environment", "not recorded (no executed notebook among the outputs)", None)]
    record: StageRun = run["record"]
    packages = ", ".join(f"{k} {v}" for k, v in sorted(record.packages.items()))
    return [Fact("environment", f"python {record.python}; {packages}", run["matches_lock"],
                 f"from {run['path']}" if run["matches_lock"] else
                 f"{run['path']} is not the executed notebook dvc.lock records")]


def _registered_in(root: Path, project: Project, out: str, md5: str) -> str:
    from . import registry
    from .settings import load_config

    try:
        model = load_config(project).model_name
    except NbprodError:
        model = "model"
    prod = registry.current(root, model)
    found = []
    for version in registry.versions(root, model):
        text = gitrepo.show_file(root, version.commit, "dvc.lock")
        locked = parse_lock(text) if text else {}
        if any(s.outs.get(out) == md5 for s in locked.values()):
            found.append(version.tag + (" (prod)" if prod and prod.version == version.version else ""))
    return ", ".join(found)


def _data_source(root: Path, rel: str) -> Lineage | None:
    """Lineage of data added with ``dvc add``: its .dvc file is the record to check against."""
    for dvc_file in gitrepo.git(root, "ls-files", "-z", "--", "*.dvc", check=False).split("\0"):
        if not dvc_file:
            continue
        try:
            outs = (yaml.safe_load((root / dvc_file).read_text(encoding="utf-8")) or {}).get("outs") or []
        except (OSError, yaml.YAMLError):
            continue
        for out in outs:
            path = (Path(dvc_file).parent / str(out.get("path", ""))).as_posix()
            if rel != path and not rel.startswith(path + "/"):
                continue
            md5 = str(out.get("md5", ""))
            result = Lineage(rel, f"(a data source, recorded in {dvc_file} by dvc add)")
            now = current_md5(root, path, md5)
            result.facts.append(Fact("data md5", md5, now == md5,
                                     "" if now == md5 else f"the data now has md5 {now}: run 'dvc add {path}'"))
            last = gitrepo.git(root, "log", "-1", "--format=%H", "--", dvc_file, check=False)
            dirty = bool(gitrepo.git(root, "status", "--porcelain", "--", dvc_file, check=False))
            result.facts.append(Fact(f"commit recording {dvc_file}", last or "none", bool(last) and not dirty,
                                     "uncommitted changes" if dirty else ("never committed" if not last else "")))
            return result
    return None
