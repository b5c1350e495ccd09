"""Post a file as the one qa note of a GitLab merge request, replacing the note it posted before.

    python examples/ci/gitlab_mr_note.py reports/summary.md

Run by examples/ci/gitlab-ci.yml in a merge-request pipeline. It reads GitLab's predefined
variables CI_API_V4_URL, CI_PROJECT_ID and CI_MERGE_REQUEST_IID, and QA_NOTES_TOKEN, a token
with the `api` scope (the job token cannot write notes). The note ends with a hidden marker;
the notes API (GET, then PUT or POST /projects/:id/merge_requests/:iid/notes) finds the note
holding it and updates it, so a merge request keeps one qa note however many pipelines ran.
Standard library only.
"""

import json
import os
import sys
import urllib.request

MARKER = "<!-- qa-gate -->"


def _call(method: str, url: str, token: str, body: dict | None = None):
    """One notes-API request: (decoded JSON, the next page's number or None)."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("PRIVATE-TOKEN", token)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response), response.headers.get("X-Next-Page") or None


def existing_note(notes_url: str, token: str) -> int | None:
    """The id of the note holding MARKER, if this merge request has one."""
    page = "1"
    while page:
        notes, page = _call("GET", f"{notes_url}?per_page=100&page={page}", token)
        for note in notes:
            if MARKER in (note.get("body") or ""):
                return note["id"]
    return None


def post(path: str) -> str:
    """Create or update the merge request's qa note with the text of `path`; what was done."""
    env = os.environ
    notes_url = (
        f"{env['CI_API_V4_URL']}/projects/{env['CI_PROJECT_ID']}"
        f"/merge_requests/{env['CI_MERGE_REQUEST_IID']}/notes"
    )
    token = env["QA_NOTES_TOKEN"]
    with open(path, encoding="utf-8") as f:
        body = {"body": f"{f.read().rstrip()}\n\n{MARKER}\n"}
    note = existing_note(notes_url, token)
    if note is None:
        _call("POST", notes_url, token, body)
        return "created"
    _call("PUT", f"{notes_url}/{note}", token, body)
    return f"updated note {note}"


def main(argv: list[str]) -> int:
    """Exit 0 when the note is posted; 1, with one line, when it cannot be."""
    if len(argv) != 1:
        print("usage: gitlab_mr_note.py SUMMARY.md", file=sys.stderr)
        return 1
    try:
        print(f"merge request note: {post(argv[0])}")
    except (KeyError, OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        print(f"merge request note not posted: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
