#!/usr/bin/env python3
"""Measures the AppHost's start-up and shutdown on this machine and prints a table.

  python3 docs/scripts/measure-startup.py [--runs N] [--no-build]

Run it after `./shop test` (or `./shop run`) so packages are installed. It does a clean build (timed),
then N times: `dotnet run --project AppHost --no-build` with random ports, time until the AppHost prints
"Dashboard:" (every resource healthy), resident memory of every process after 10 s idle, and the time
from SIGTERM to exit. Every process it starts is stopped by the AppHost it starts, or killed by pid.
"""
import json, os, re, shutil, signal, statistics, subprocess, sys, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None


def group_rss_mib(pgid):
    """Resident memory of a whole process group (a server and its workers, e.g. rabbitmq-server + beam.smp)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                if int(stat[stat.rindex(")") + 2:].split()[2]) == pgid:
                    total += rss_mib(int(entry)) or 0
            except (OSError, ValueError):
                pass
    return total


def clean_build():
    for project in ["AppHost", "ServiceDefaults", "Gateway", "Orders", "Inventory", "Notifications", "Tests"]:
        for folder in ["bin", "obj"]:
            shutil.rmtree(os.path.join(ROOT, project, folder), ignore_errors=True)
    subprocess.run(["dotnet", "restore", "Aspire.sln", "-v", "quiet"], cwd=ROOT, check=True)
    started = time.monotonic()
    subprocess.run(["dotnet", "build", "Aspire.sln", "--no-restore", "-v", "quiet", "-nologo"], cwd=ROOT, check=True)
    return time.monotonic() - started


def one_run():
    started = time.monotonic()
    host = subprocess.Popen(
        ["dotnet", "run", "--project", "AppHost", "--no-build", "--",
         "--AppHost:GatewayPort=0", "--AppHost:DashboardPort=0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dashboard = None
    healthy_after = None
    try:
        for line in host.stdout:
            if line.startswith("Dashboard: "):
                dashboard = line.split(" ", 1)[1].strip()
                healthy_after = time.monotonic() - started
                break
        if dashboard is None:
            raise RuntimeError("the AppHost exited before everything was healthy")
        time.sleep(10)
        resources = json.load(urllib.request.urlopen(f"{dashboard}/api/resources"))
        memory = {}
        for resource in resources:
            for replica in resource["replicas"]:
                if replica["pid"]:
                    memory[replica["id"]] = group_rss_mib(replica["pid"])
        memory["apphost (dotnet run + AppHost)"] = sum(filter(None, [rss_mib(host.pid)] + [rss_mib(int(p)) for p in children(host.pid)]))
        stop_started = time.monotonic()
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=60)
        stopped_after = time.monotonic() - stop_started
        return healthy_after, stopped_after, memory
    finally:
        if host.poll() is None:
            host.kill()


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    found.append(entry)
            except (OSError, ValueError):
                pass
    return found


build = None if "--no-build" in sys.argv else clean_build()
results = [one_run() for _ in range(runs)]
print()
print(f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
if build is not None:
    print(f"clean build (dotnet build Aspire.sln after restore): {build:.1f} s")
healthy = [r[0] for r in results]
stopped = [r[1] for r in results]
print(f"dotnet run --no-build to all healthy, {runs} runs: median {statistics.median(healthy):.1f} s (min {min(healthy):.1f}, max {max(healthy):.1f})")
print(f"SIGTERM to exit (graceful, data removed), {runs} runs: median {statistics.median(stopped):.1f} s (max {max(stopped):.1f})")
print()
print(f"{'process group (idle, 10 s after healthy)':40} {'RSS MiB':>8}")
last = results[-1][2]
for name in sorted(last):
    value = last[name]
    print(f"{name:40} {value:8.1f}" if value else f"{name:40} {'-':>8}")
print(f"{'total':40} {sum(v for v in last.values() if v):8.1f}")
