"""The JUnit XML report (`junit.xml`): one testcase per check, for CI systems that show tests.

Rendered from the JSON result. classname is the check's family, name the check's name; a
failed gate is a <failure>, a check that could not be evaluated an <error>, a skipped one
<skipped>, each with the check's message; the text of a failure or error, and the system-out
of a pass or warning, add the gate's effect (estimate, interval, threshold, regression facts,
borderline: qa.report.fmt.effect_lines) and, for a per-slice gate, a line per slice that did
not pass (fmt.slice_lines), numbers rounded for people.

JUnit has no warning state, and a warning hidden in a passing testcase is one nobody reads, so
a `warn` (a failed gate of severity warn) is a <skipped message="warn: MESSAGE">: GitLab's test
report and GitHub's JUnit reporters (mikepenz/action-junit-report, dorny/test-reporter) list
skipped tests apart from passed ones. The testsuite's <properties> carry one
`<property name="qa.warn" value="CHECK NAME"/>` per warned check (telling a warning from a
true skip), and `qa.verdict` (pass, fail or error). Under --strict a warning blocks the run,
so it is a <failure> whose message starts "warn (blocks with --strict): ". The testsuite's
failures, errors and skipped counts are those of the elements. The file keeps to Jenkins'
JUnit schema (properties only on the testsuite; per testcase at most one of skipped, error or
failure, then system-out).

Every attribute and text goes through fmt.printable: a control character in a name (which
XML 1.0 cannot hold, even escaped) is written as a visible escape, so the file always parses.
"""

import xml.etree.ElementTree as ET

from qa.report.fmt import effect_lines, printable, rounded, slice_lines

TAGS = {"fail": "failure", "error": "error", "skip": "skipped"}


def render(doc: dict) -> str:
    """The result document as JUnit XML (one <testsuite> named after the suite)."""
    checks = doc["checks"]
    tags = [_tag(c, doc.get("strict", False)) for c in checks]
    suite = ET.Element(
        "testsuite",
        {
            "name": doc["suite"]["name"],
            "tests": str(len(checks)),
            "failures": str(tags.count("failure")),
            "errors": str(tags.count("error")),
            "skipped": str(tags.count("skipped")),
            "time": f"{sum(c['seconds'] or 0.0 for c in checks):.3f}",
            "timestamp": doc["started"],
        },
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "qa.verdict", "value": doc["verdict"]})
    for c in checks:
        if c["status"] == "warn":
            ET.SubElement(properties, "property", {"name": "qa.warn", "value": c["name"]})
    for c, tag in zip(checks, tags, strict=True):
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": c["family"], "name": c["name"], "time": f"{c['seconds'] or 0.0:.3f}"},
        )
        if tag is not None:
            message = _message(c, tag)
            child = ET.SubElement(case, tag, {"message": message})
            if tag != "skipped":
                child.set("type", c["kind"])
                child.text = _decision(c, message) or message
        if tag is None or c["status"] == "warn":
            lines = [f"{c['status']}: {c['message']}", *effect_lines(c)]
            ET.SubElement(case, "system-out").text = "\n".join(lines)
    for element in suite.iter():
        element.attrib = {k: printable(v) for k, v in element.attrib.items()}
        if element.text is not None:
            element.text = printable(element.text)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _tag(check: dict, strict: bool) -> str | None:
    """The testcase's child element for the check's status; None for a pass."""
    if check["status"] == "warn":
        return "failure" if strict else "skipped"
    return TAGS.get(check["status"])


def _message(check: dict, tag: str) -> str:
    if check["status"] != "warn":
        return check["message"]
    return f"warn{' (blocks with --strict)' if tag == 'failure' else ''}: {check['message']}"


def _decision(check: dict, message: str) -> str:
    """The message, the deciding comparison ("accuracy_low = 0.81 (>= 0.9 required)") and the
    gate's effect (fmt.effect_lines), one per line."""
    t, metrics = check["threshold"], check["metrics"] or {}
    if not t or t.get("metric") not in metrics:
        return ""
    value, limit = rounded(metrics[t["metric"]]), rounded(t["value"])
    return "\n".join(
        [
            message,
            f"{t['metric']} = {value} ({t['op']} {limit} required)",
            *effect_lines(check),
            *slice_lines(check),
        ]
    )
