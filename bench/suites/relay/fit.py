"""(e)'s cost fit: Córtex's CPU over a path's runs as a x messages + b x chunks + c x requests."""

from __future__ import annotations

from harness.rounds import Run

from suites.relay.plan import MIN_FIT_RUNS


def cost_fit(runs: list[Run]) -> dict[str, float] | None:
    """Córtex's CPU over a path's runs as a x messages + b x HTTP chunks + c x requests.

    Weighted least squares on relative error (each run divided by its own CPU), so the
    short concurrency-1 runs count as much as the long ones. ``a`` is what one more
    message costs when its chunk's cost is shared: the many-token figure that does not
    depend on how far behind the upstream Córtex happened to fall.
    """
    if len(runs) < MIN_FIT_RUNS or any(r.cpu_s <= 0 for r in runs):
        return None
    rows = [(r.messages / r.cpu_s, r.chunks / r.cpu_s, r.requests / r.cpu_s) for r in runs]
    normal = [[sum(x[i] * x[j] for x in rows) for j in range(3)] for i in range(3)]
    rhs = [sum(x[i] for x in rows) for i in range(3)]
    solution = solve3(normal, rhs)
    if solution is None:
        return None
    a, b, c = solution
    if min(a, b, c) <= 0:
        return None  # the runs did not pin the three costs down
    errors = [abs(a * r.messages + b * r.chunks + c * r.requests - r.cpu_s) / r.cpu_s for r in runs]
    return {
        "cpu_ms_per_1000_messages": a * 1e6,
        "cpu_ms_per_1000_chunks": b * 1e6,
        "cpu_ms_per_request": c * 1e3,
        "max_relative_error": max(errors),
        "runs": len(runs),
    }


def solve3(m: list[list[float]], v: list[float]) -> tuple[float, float, float] | None:
    """Cramer's rule for a 3x3 system; None when it is (nearly) singular."""

    def det(a: list[list[float]]) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    scale = max(abs(x) for row in m for x in row) ** 3
    if abs(d) <= 1e-12 * scale:
        return None
    columns = []
    for k in range(3):
        replaced = [[v[i] if j == k else m[i][j] for j in range(3)] for i in range(3)]
        columns.append(det(replaced) / d)
    return columns[0], columns[1], columns[2]
