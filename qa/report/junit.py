"""The JUnit XML report (`junit.xml`): one testcase per check, for CI systems that show tests.

Rendered from the JSON result. classname is the check's family, name the check's name; a
failed gate is a <failure>, a check that could not be evaluated an <error>, a skipped one
<skipped>, each with the check's message. A `warn` is a passing testcase whose message is
kept in <system-out>, since JUnit has no warning state and a warning does not block.
Every attribute and text goes through fmt.printable: a control character in a name (which
XML 1.0 cannot hold, even escaped) is written as a visible escape, so the file always parses.
"""

import xml.etree.ElementTree as ET

from qa.report.fmt import printable

TAGS = {"fail": "failure", "error": "error", "skip": "skipped"}


def render(doc: dict) -> str:
    """The result document as JUnit XML (one <testsuite> named after the suite)."""
    checks, summary = doc["checks"], doc["summary"]
    suite = ET.Element(
        "testsuite",
        {
            "name": doc["suite"]["name"],
            "tests": str(len(checks)),
            "failures": str(summary["fail"]),
            "errors": str(summary["error"]),
            "skipped": str(summary["skip"]),
            "time": f"{sum(c['seconds'] or 0.0 for c in checks):.3f}",
            "timestamp": doc["started"],
        },
    )
    for c in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": c["family"], "name": c["name"], "time": f"{c['seconds'] or 0.0:.3f}"},
        )
        tag = TAGS.get(c["status"])
        if tag is None:
            ET.SubElement(case, "system-out").text = f"{c['status']}: {c['message']}"
            continue
        child = ET.SubElement(case, tag, {"message": c["message"]})
        if tag != "skipped":
            child.set("type", c["kind"])
            child.text = _decision(c) or c["message"]
    for element in suite.iter():
        element.attrib = {k: printable(v) for k, v in element.attrib.items()}
        if element.text is not None:
            element.text = printable(element.text)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _decision(check: dict) -> str:
    """The message and the deciding comparison, e.g. "... accuracy_low = 0.81 (>= 0.9 required)"."""
    t, metrics = check["threshold"], check["metrics"] or {}
    if not t or t.get("metric") not in metrics:
        return ""
    comparison = f"{t['metric']} = {metrics[t['metric']]} ({t['op']} {t['value']} required)"
    return f"{check['message']}\n{comparison}"
