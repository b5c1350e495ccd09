"""Reports: renderers that only render the result document, and the writing of the report set.

A run's `RunReport` (qa.result) is built once by the application (qa.application) and turned
into the result document once (`json_report.to_dict`; a run that stopped on an error gets
`json_report.error_document`); every renderer (`json_report`, `junit`, `terminal`, `html`,
`markdown`) takes that document and computes nothing, so `qa report result.json` re-renders
any format from a saved result.
`write_report_set` renders every file first, then replaces result.json, junit.xml,
result.html and summary.md together: a failure leaves the previous set (or none), never a
mix of two runs and never half of a file.

Adding a format is one module with `render(doc) -> str` and one line in FORMATS: `qa report
--format NAME` offers it at once, and a `file` name puts it in the set every `qa run` writes.
"""

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from qa.errors import InputError
from qa.io import IncompleteReplace, atomic_paths
from qa.report import html, json_report, junit, markdown, terminal
from qa.result import RunReport


@dataclass(frozen=True)
class ReportFormat:
    """A renderer module (`render(doc) -> str`) and the file `qa run` writes it to, if any."""

    module: ModuleType
    file: str | None = None


FORMATS = {
    "json": ReportFormat(json_report, "result.json"),
    "junit": ReportFormat(junit, "junit.xml"),
    "html": ReportFormat(html, "result.html"),
    "md": ReportFormat(markdown, "summary.md"),
    "terminal": ReportFormat(terminal),  # shown by `qa run`; `qa report` can save it as text
}
REPORT_FILES = {name: f.file for name, f in FORMATS.items() if f.file is not None}


def render_all(doc: dict) -> dict[str, str]:
    """Every report file's text for a result document, keyed like REPORT_FILES."""
    return {name: FORMATS[name].module.render(doc) for name in REPORT_FILES}


class ReportWriteError(InputError):
    """The report set could not be written; the message says what the folder holds now."""


def write_reports(report: RunReport, out_dir: str | Path) -> dict[str, Path]:
    """Write the report set of a finished run (see write_report_set)."""
    return write_report_set(json_report.to_dict(report), out_dir)


def write_report_set(doc: dict, out_dir: str | Path) -> dict[str, Path]:
    """Render result.json, junit.xml, result.html and summary.md from `doc`, then replace the
    four files together or not at all.

    Raises ReportWriteError, one line: the cause and whether the folder still holds the
    previous set (or none) or, should putting it back fail too, which files are new.
    """
    texts = render_all(doc)
    paths = {fmt: Path(out_dir) / REPORT_FILES[fmt] for fmt in texts}
    try:
        with atomic_paths(list(paths.values())) as temporaries:
            for tmp, text in zip(temporaries, texts.values(), strict=True):
                tmp.write_text(text, encoding="utf-8")
    except IncompleteReplace as exc:
        new = ", ".join(p.name for p in exc.replaced)
        raise ReportWriteError(
            f"--out {out_dir}: the reports could not be written ({exc.__cause__}); "
            f"{new} (this run's) could not be put back; the other files are unchanged"
        ) from None
    except OSError as exc:
        raise ReportWriteError(
            f"--out {out_dir}: the reports could not be written ({exc}); "
            "the folder holds the previous reports, if any, unchanged"
        ) from None
    return paths


def append_step_summary(doc: dict, path: str | Path) -> None:
    """Append the Markdown summary to a CI step summary (GitHub's `$GITHUB_STEP_SUMMARY`)."""
    text = markdown.render(doc)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
