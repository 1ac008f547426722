"""`fedsante project ...`, `fedsante review ...` and `fedsante run ...`: holders and reviewers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedsante.cli.common import (DEFAULT_DESK, DEFAULT_TOKEN_FILE, DeskUrl, TokenFile, console, friendly,
                                 parse_params, rows_table, with_desk)
from fedsante.common.errors import FedsanteError
from fedsante.federation.result import RunResult

project_app = typer.Typer(help="Submit and follow projects (project holder).", no_args_is_help=True)
review_app = typer.Typer(help="Review projects against the charter (desk reviewer).", no_args_is_help=True)
run_app = typer.Typer(help="Start and follow federated runs of approved projects.", no_args_is_help=True)
Reference = Annotated[str, typer.Argument(help="Project reference, e.g. RAIH-2026-0001.")]
Comment = Annotated[str, typer.Option("--comment", "-m", help="Your comment (kept and published).")]
ReviewComment = Annotated[str, typer.Option("--comment", "-m", help=(
    "Your comment to the applicant and the desk (kept, never published)."))]
PublicReason = Annotated[str, typer.Option("--public-reason", help=(
    "A reason published on the portal with your decision (optional; the comment never is)."))]


@project_app.command("template")
@friendly
def project_template(
    algorithm: Annotated[str, typer.Option(help="Catalogue algorithm whose parameters the template lists.")] = "logreg",
) -> None:
    """Print a complete project file (TOML) to start from: the heart example, every parameter of the
    algorithm with its default, bounds and meaning, and a study table to copy for your own data."""
    from fedsante.desk.template import project_template as template

    print(template(algorithm), end="")


@project_app.command("submit")
@friendly
def project_submit(
    file: Annotated[Path, typer.Argument(help="Project file (TOML or JSON), see 'fedsante project template'.")],
    update: Annotated[str | None, typer.Option(help="Reference of your existing draft to update instead.")] = None,
    draft: Annotated[bool, typer.Option(help="Save as a draft without submitting.")] = False,
    desk_url: DeskUrl = DEFAULT_DESK,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Create (or update) a project from a file and submit it for review."""
    from fedsante.desk.registry import load_project_file

    spec = load_project_file(file).model_dump(mode="json")

    async def go(desk) -> dict:
        project = await (desk.update_project(update, spec) if update else desk.create_project(spec))
        if draft:
            return project
        try:
            return await desk.transition(project["reference"], "submit")
        except FedsanteError as exc:
            raise FedsanteError(f"{exc.message}\nProject {project['reference']} is saved as a draft; fix {file} and "
                                f"run 'fedsante project submit {file} --update {project['reference']}'.") from None

    project = with_desk(desk_url, token_file, go)
    console.print(f"Project {project['reference']} (version {project['version']}): {project['status']}.")


@project_app.command("list")
@friendly
def project_list(status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
                 desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """List projects with their status."""
    rows = with_desk(desk_url, token_file, lambda desk: desk.projects(status))
    console.print(rows_table("Projects", rows, ["reference", "title", "status", "version", "organisation",
                                                "approval_id"]))


@project_app.command("catalogue")
@friendly
def project_catalogue(hospital: Annotated[str | None, typer.Option(help="Only this hospital (node id).")] = None,
                      desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """The datasets each hospital offers, with each column's name, type and number of distinct values (<= 20
    levels or many), to write a study's mapping: names and types only, never a value or a count."""
    nodes = with_desk(desk_url, token_file, lambda desk: desk.catalogue())
    if hospital is not None:
        nodes = [n for n in nodes if n["node_id"] == hospital]
        if not nodes:
            raise FedsanteError(f"No hospital {hospital!r} at this desk; 'fedsante project catalogue' lists them all.")
    for node in nodes:
        console.print(catalogue_table(node))


def catalogue_table(node: dict):
    """One hospital's catalogue as a Rich table (text from the desk is shown as text, never as markup)."""
    from rich.table import Table
    from rich.text import Text

    title = Text(f"{node['hospital_name']} ({node['node_id']})")
    if not node["datasets"]:
        return Text.assemble(title, ": no catalogue published yet (its node has not connected since it was set up).")
    caption = Text("; ".join(f"{d['name']} ({d['format']}): {d['description'] or 'no description'}"
                             for d in node["datasets"]))
    table = Table(title=title, caption=caption, caption_justify="left")
    for header in ("dataset", "column", "type", "distinct values"):
        table.add_column(header)
    for dataset in node["datasets"]:
        for i, column in enumerate(dataset["columns"]):
            table.add_row(*(Text(v) for v in (dataset["name"] if i == 0 else "", column["name"], column["type"],
                                              column["distinct"])))
    return table


@project_app.command("show")
@friendly
def project_show(reference: Reference, desk_url: DeskUrl = DEFAULT_DESK,
                 token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Show a project: status, charter checks, reviews, history, approval, acceptances."""

    async def go(desk) -> dict:
        parts = {"project": await desk.project(reference)}
        for part in ("checks", "reviews", "history", "acceptances"):
            parts[part] = await desk.project(reference, part)
        return parts

    parts = with_desk(desk_url, token_file, go)
    project = parts["project"]
    console.print(f"[bold]{project['reference']}[/] {project['title']}\nstatus: {project['status']}, version "
                  f"{project['version']}, organisation {project['organisation']}, approval "
                  f"{project['approval_id'] or '-'}")
    checks = [{"principle": c["principle"], "check": c["id"], "result": _RESULT[_outcome(c)],
               "detail": "" if _outcome(c) == "pass" else c["message_en"]} for c in parts["checks"]["checks"]]
    console.print(rows_table("Charter checks", checks, ["principle", "check", "result", "detail"]))
    console.print(rows_table("Reviews", parts["reviews"], ["created_at", "reviewer", "reviewer_organisation", "version",
                                                           "decision", "comment", "public_reason"]))
    console.print(rows_table("History", parts["history"], ["time", "actor", "from", "to", "reason"]))
    console.print(rows_table("Hospital decisions", parts["acceptances"], ["node_id", "decision", "decided_at", "reason"]))


_RESULT = {"pass": "pass", "fail": "FAIL", "flag": "FLAG"}


def _outcome(check: dict) -> str:
    """pass, fail or flag (a desk older than the flags sends only ``ok``)."""
    return check.get("outcome") or ("pass" if check["ok"] else "fail")


def _transition(reference: str, action: str, reason: str, desk_url: str, token_file: Path) -> None:
    project = with_desk(desk_url, token_file, lambda desk: desk.transition(reference, action, reason))
    console.print(f"Project {project['reference']}: {project['status']}.")


@project_app.command("complete")
@friendly
def project_complete(reference: Reference, reason: str = "", desk_url: DeskUrl = DEFAULT_DESK,
                     token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Declare processing complete (project holder)."""
    _transition(reference, "complete", reason, desk_url, token_file)


@project_app.command("release")
@friendly
def project_release(reference: Reference, reason: str = "", desk_url: DeskUrl = DEFAULT_DESK,
                    token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Release a completed project's results (desk reviewer)."""
    _transition(reference, "release", reason, desk_url, token_file)


@project_app.command("archive")
@friendly
def project_archive(reference: Reference, reason: str = "", desk_url: DeskUrl = DEFAULT_DESK,
                    token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Archive a project (desk admin)."""
    _transition(reference, "archive", reason, desk_url, token_file)


def _review(reference: str, decision: str, comment: str, answers: list[str], desk_url: str, token_file: Path,
            public_reason: str = "") -> None:
    parsed = parse_params(answers)
    project = with_desk(desk_url, token_file,
                        lambda desk: desk.review(reference, decision, comment, parsed, public_reason))
    console.print(f"Recorded your '{decision}' on {reference}; the project is now {project['status']}"
                  + (f" (approval {project['approval_id']})." if project["status"] == "approved" else "."))


Answer = Annotated[list[str], typer.Option("--answer", help="Charter question answer id=text (repeatable).")]


REVIEW_COMMANDS = {
    "approve": ("approve", "Approve; with enough approving reviewers the desk signs the approval."),
    "request-changes": ("changes_requested", "Send the project back to its holder with what to change (-m)."),
    "reject": ("reject", "Reject the project; final (-m says why)."),
    "comment": ("comment", "Comment without deciding (starts the review)."),
}


def _review_command(decision: str, help_text: str):
    def command(reference: Reference, comment: ReviewComment = "", answer: Answer = [],  # noqa: B006
                public_reason: PublicReason = "",
                desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
        _review(reference, decision, comment, answer, desk_url, token_file, public_reason)

    command.__doc__ = help_text
    return friendly(command)


for _name, (_decision, _help) in REVIEW_COMMANDS.items():
    review_app.command(_name)(_review_command(_decision, _help))


@review_app.command("queue")
@friendly
def review_queue(desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Projects waiting for a review."""

    async def go(desk) -> list[dict]:
        projects = [*await desk.projects("submitted"), *await desk.projects("in_review")]
        for project in projects:
            checks = (await desk.project(project["reference"], "checks"))["checks"]
            project["flags"] = " ".join(c["message_en"] for c in checks if _outcome(c) == "flag")
        return projects

    console.print(rows_table("Waiting for review", with_desk(desk_url, token_file, go),
                             ["reference", "title", "status", "version", "organisation", "flags"]))


@run_app.command("start")
@friendly
def run_start(
    project: Annotated[str, typer.Option(help="Reference of the approved project.")],
    nodes: Annotated[str | None, typer.Option(help="Comma-separated node ids (default: the approval's).")] = None,
    param: Annotated[list[str], typer.Option(help="Parameter change name=value, within bounds.")] = [],  # noqa: B006
    desk_url: DeskUrl = DEFAULT_DESK,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Start a federated run of an approved project and follow it to the end (project holder)."""
    node_list = [n.strip() for n in nodes.split(",") if n.strip()] if nodes else None

    async def go(desk) -> dict:
        run = await desk.start_run(project, node_list, parse_params(param))
        with console.status("running") as status:
            return await desk.wait_run(run["id"], on_progress=lambda r: status.update(
                f"run {r['id']}: round {r['current_round']}/{r['rounds']}"))

    run = with_desk(desk_url, token_file, go)
    _print_participation(run)
    if run["result"] is None:
        console.print(f"Run {run['id']} {run['status']}. Its outputs are held until reviewers release them; "
                      f"see 'fedsante run checks {run['id']}'.")
    else:
        _print_metrics(run)


def _print_participation(run: dict) -> None:
    """Which hospitals the feasibility stage left out, and the notes on those that took part."""
    for reason in run.get("left_out", {}).values():
        console.print(f"[yellow]{reason}[/yellow]")
    for notes in run.get("notes", {}).values():
        for note in notes:
            console.print(note)


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_metrics(run: dict) -> None:
    result = RunResult.model_validate(run["result"])
    rows = [{"node": node, "n test": _num(m.get("n"), 0), "accuracy": _num(m.get("accuracy")), "AUC": _num(m.get("auc"))}
            for node, m in result.node_metrics.items()]
    console.print(rows_table(f"Run {run['id']}: {run['status']}", rows, ["node", "n test", "accuracy", "AUC"]))


@run_app.command("show")
@friendly
def run_show(run_id: str, desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Show a run's status and, once completed, its per-node metrics."""
    run = with_desk(desk_url, token_file, lambda desk: desk.run(run_id))
    console.print(f"run {run['id']}: {run['status']}, round {run['current_round']}/{run['rounds']}"
                  + (f"\n{run['error']}" if run["error"] else "")
                  + ("\noutputs held until reviewers release them ('fedsante run checks')" if run["held"] else ""))
    _print_participation(run)
    if run["result"]:
        _print_metrics(run)


@run_app.command("checks")
@friendly
def run_checks(run_id: str, desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """The automatic checks on a run's outputs, and who released them."""
    checks = with_desk(desk_url, token_file, lambda desk: desk.run_checks(run_id))
    rows = [{**c, "ok": "pass" if c["ok"] else "FAIL"} for c in checks["checks"]]
    console.print(rows_table(f"Output checks of run {run_id}", rows, ["id", "ok", "message"]))
    console.print(f"released by {', '.join(checks['released_by']) or 'nobody yet'} "
                  f"({len(checks['released_by'])} of {checks['needed']} needed)")


@run_app.command("release")
@friendly
def run_release(run_id: str, comment: Comment = "", desk_url: DeskUrl = DEFAULT_DESK,
                token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Release a completed run's outputs after the automatic checks (desk reviewer)."""
    outcome = with_desk(desk_url, token_file, lambda desk: desk.release_run(run_id, comment))
    state = "released" if outcome["released"] else f"held until {outcome['needed']} reviewers release it"
    console.print(f"Run {run_id}: you released it; released by {', '.join(outcome['released_by'])}; {state}.")


@friendly
def report(run_id: str,
           out: Annotated[Path, typer.Option(help="Folder for trust-report.html/.fr.html/.json and the summaries.")] = Path("out/report"),
           desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """(Re)generate a run's trust report: HTML in English and French, JSON, plain-language summaries."""
    from fedsante.reports.render import write_report

    trust = with_desk(desk_url, token_file, lambda desk: desk.trust_report(run_id))
    paths = write_report(trust, out)
    console.print("\n".join(f"wrote {path}" for path in paths.values()))
