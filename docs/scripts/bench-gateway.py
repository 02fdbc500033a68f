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
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SECONDS = int(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 10
CONNECTIONS = int(sys.argv[sys.argv.index("--connections") + 1]) if "--connections" in sys.argv else 64
ADMIN_PASSWORD = "Benchmark-Admin-Password-1"

REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("JSON{\\"requests\\":%d,\\"seconds\\":%f,\\"errors\\":%d,\\"status\\":%d,\\"p50\\":%f,\\"p95\\":%f,\\"p99\\":%f}\\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


def ensure_wrk():
    if shutil.which("wrk") is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def wrk(url, headers, connections, lua_extra="", seconds=None):
    """Runs a discarded warm-up first, at 8 connections so tiered JIT is not starved of CPU, then the measured run."""
    if seconds is None:
        wrk(url, headers, min(8, connections), lua_extra, max(5, SECONDS))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_extra + REPORT)
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds or SECONDS}s", "--timeout", "5s", "-s", script.name]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    output = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    result = json.loads(next(line for line in output.splitlines() if line.startswith("JSON"))[4:])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def request(url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    return json.load(urllib.request.urlopen(req))


def main():
    ensure_wrk()
    env = dict(os.environ)
    env["RateLimiting__Policies__user__PermitLimit"] = "100000000"
    env["RateLimiting__Policies__auth__PermitLimit"] = "100000000"
    env["RateLimiting__Policies__anonymous__PermitLimit"] = "100000000"
    host = subprocess.Popen(
        ["dotnet", "run", "--project", "AppHost", "--no-build", "--",
         "--AppHost:GatewayPort=0", "--AppHost:DashboardPort=0", f"--AppHost:AdminPassword={ADMIN_PASSWORD}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        gateway = dashboard = None
        for line in host.stdout:
            if line.startswith("Gateway: "):
                gateway = line.split(" ", 1)[1].strip()
            if line.startswith("Dashboard: "):
                dashboard = line.split(" ", 1)[1].strip()
                break
        resources = {r["name"]: r for r in request(f"{dashboard}/api/resources")}
        inventory = resources["inventory"]["replicas"][0]["endpoint"]
        gateway_replica = resources["gateway"]["replicas"][0]["endpoint"]
        login = {"tenant": "demo", "email": "admin@demo.local", "password": ADMIN_PASSWORD}
        token = request(f"{gateway}/v1/auth/login", login)["accessToken"]
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
    finally:
        if host.poll() is None:
            host.send_signal(signal.SIGTERM)
            try:
                host.wait(timeout=60)
            except subprocess.TimeoutExpired:
                host.kill()


main()
