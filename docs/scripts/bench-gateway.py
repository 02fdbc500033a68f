#!/usr/bin/env python3
"""Gateway benchmark: proxy overhead and login rate, printed as a table.

  python3 docs/scripts/bench-gateway.py [--seconds 10] [--connections 64]

Run it after `./shop test` (everything built and installed; wrk is installed here if missing). It starts the
AppHost (`dotnet run --no-build`, random ports, default replicas), signs in as the seeded admin, then with wrk
on loopback, each for a bounded time:
  1. GET /v1/products/{id} directly on one Inventory replica (the service alone),
  2. the same GET on one Gateway replica (the Gateway's cost: auth, revocation check, rate limit, forwarding),
  3. the same GET on the public endpoint (AppHost TCP proxy -> Gateway replicas -> Inventory replicas),
  4. GET /alive on one Inventory replica (a near-empty Kestrel request: this machine's ceiling),
  5. POST /v1/auth/login with the admin's password (Argon2id at the configured cost).
Each scenario gets a discarded warm-up first (at 8 connections: on a saturated 2-core machine the
background JIT would otherwise be starved and the code measured would still be unoptimised). Rate limits are raised for the run through the environment (the
limiter still runs on every request).
Every process it starts is stopped by the AppHost it starts, or killed by pid.
"""
import json, os, sys

from shopctl import apphost, admin_token, ensure_wrk, request, wrk as wrk_once

SECONDS = int(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 10
CONNECTIONS = int(sys.argv[sys.argv.index("--connections") + 1]) if "--connections" in sys.argv else 64
RAISED_LIMITS = {f"RateLimiting__Policies__{policy}__PermitLimit": "100000000" for policy in ("user", "auth", "anonymous")}


def wrk(url, headers, connections, lua_extra=""):
    """A discarded warm-up first, at 8 connections so tiered JIT is not starved of CPU, then the measured run."""
    wrk_once(url, headers, min(8, connections), max(5, SECONDS), lua_extra)
    return wrk_once(url, headers, connections, SECONDS, lua_extra)


def main():
    ensure_wrk()
    with apphost(environment=RAISED_LIMITS) as (gateway, _, resources):
        inventory = resources["inventory"]["replicas"][0]["endpoint"]
        gateway_replica = resources["gateway"]["replicas"][0]["endpoint"]
        token, login = admin_token(gateway)
        product = request(f"{gateway}/v1/products?pageSize=1", token=token)["items"][0]["id"]
        auth = {"Authorization": f"Bearer {token}"}
        path = f"/v1/products/{product}"

        rows = [
            ("GET product, Inventory replica directly", wrk(inventory + path, auth, CONNECTIONS)),
            ("GET product, one Gateway replica", wrk(gateway_replica + path, auth, CONNECTIONS)),
            ("GET product, public endpoint (proxy + Gateway x2)", wrk(gateway + path, auth, CONNECTIONS)),
            ("GET /alive, Inventory (Kestrel ceiling)", wrk(inventory + "/alive", {}, CONNECTIONS)),
        ]
        body = json.dumps(login).replace('"', '\\"')
        login_lua = f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n'
        rows.append(("POST login (Argon2id m=19 MiB, t=2), 16 conns", wrk(gateway_replica + "/v1/auth/login", {}, 16, login_lua)))

        print()
        print(f"machine: {os.cpu_count()} cores; wrk -t2 -c{CONNECTIONS} -d{SECONDS}s on loopback, sharing the cores with the system")
        print(f"{'scenario':52} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} {'non-2xx':>8}")
        for name, r in rows:
            print(f"{name:52} {r['rps']:9.0f} {r['p50']:8.2f} {r['p95']:8.2f} {r['p99']:8.2f} {r['errors']:7d} {r['status']:8d}")
        direct, replica, public = rows[0][1], rows[1][1], rows[2][1]
        print()
        print(f"one Gateway replica vs direct: {replica['rps'] / direct['rps']:.0%} of direct throughput, "
              f"+{replica['p50'] - direct['p50']:.2f} ms at p50, +{replica['p95'] - direct['p95']:.2f} ms at p95")
        print(f"public endpoint vs direct:     {public['rps'] / direct['rps']:.0%} of direct throughput, "
              f"+{public['p50'] - direct['p50']:.2f} ms at p50, +{public['p95'] - direct['p95']:.2f} ms at p95")
        print(f"direct GET vs Kestrel ceiling: {direct['rps'] / rows[3][1]['rps']:.0%}")


main()
