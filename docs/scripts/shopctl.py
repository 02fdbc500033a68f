"""What the measurement scripts here share: wrk with a JSON summary, small JSON requests, and a started AppHost.

Not run on its own; `bench-gateway.py` and `measure-allocation.py` import it.
"""
import contextlib, json, os, shutil, signal, subprocess, tempfile, threading, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ADMIN_PASSWORD = "Benchmark-Admin-Password-1"

# wrk prints its own text; this Lua hook adds one machine-readable line with the numbers the scripts report.
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


def start_wrk(url, headers, connections, seconds, lua_extra=""):
    """Starts one wrk run and returns (process, script path); finish it with wrk_result."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_extra + REPORT)
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script.name]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    return subprocess.Popen(args + [url], stdout=subprocess.PIPE, text=True), script.name


def wrk_result(started):
    process, script = started
    output, _ = process.communicate()
    os.unlink(script)
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}")
    result = json.loads(next(line for line in output.splitlines() if line.startswith("JSON"))[4:])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def wrk(url, headers, connections, seconds, lua_extra=""):
    return wrk_result(start_wrk(url, headers, connections, seconds, lua_extra))


def request(url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    return json.load(urllib.request.urlopen(req))


@contextlib.contextmanager
def apphost(configuration="Debug", environment=None):
    """Starts the AppHost (built beforehand; random ports, the admin's password known) and yields
    (gateway URL, dashboard URL, resources by name). SIGTERM at the end stops every process it started."""
    env = dict(os.environ, **(environment or {}))
    host = subprocess.Popen(
        ["dotnet", "run", "--project", "AppHost", "-c", configuration, "--no-build", "--",
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
        if dashboard is None:
            raise RuntimeError(f"the AppHost ended before it was ready (exit code {host.wait()})")
        # The AppHost's console keeps writing; read it away so that it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in host.stdout], daemon=True).start()
        resources = {r["name"]: r for r in request(f"{dashboard}/api/resources")}
        yield gateway, dashboard, resources
    finally:
        if host.poll() is None:
            host.send_signal(signal.SIGTERM)
            try:
                host.wait(timeout=60)
            except subprocess.TimeoutExpired:
                host.kill()


def admin_token(gateway):
    login = {"tenant": "demo", "email": "admin@demo.local", "password": ADMIN_PASSWORD}
    return request(f"{gateway}/v1/auth/login", login)["accessToken"], login
