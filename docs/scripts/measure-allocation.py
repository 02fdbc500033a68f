#!/usr/bin/env python3
"""Memory allocated per request, and the share of time in GC pauses, on one Inventory replica.

  python3 docs/scripts/measure-allocation.py [--seconds 10] [--rounds 3]

Run it after `./shop test`. It builds the AppHost in Release, starts it (random ports), signs in as the seeded
admin, and with `wrk -t2 -c64` reads one product (a cache hit: the path every product page takes) straight from
one Inventory replica: a 12 s warm-up, then per round a measured run during which `dotnet-counters` (installed into
a temporary folder, removed afterwards) samples that replica's `System.Runtime` meter every second. Bytes per
request = the replica's mean allocation rate / wrk's request rate over the same window; GC pause = seconds paused
per second. The same run reads the empty `/alive` endpoint of the same replica, the service's pipeline with no work,
so the path's own share can be told from the pipeline's. Every process it starts is stopped at the end.
"""
import csv, os, shutil, subprocess, sys, tempfile, time

from shopctl import ROOT, apphost, admin_token, ensure_wrk, request, start_wrk, wrk, wrk_result

SECONDS = int(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 10
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
COUNTERS_VERSION = "10.0.750501"


def install_counters(folder):
    subprocess.run(["dotnet", "tool", "install", "dotnet-counters", "--version", COUNTERS_VERSION, "--tool-path", folder],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(folder, "dotnet-counters")


def measure(counters, pid, url, headers, folder):
    """One wrk run of SECONDS + 4 s; the counters sample the SECONDS in its middle."""
    output = os.path.join(folder, f"counters-{time.monotonic_ns()}.csv")
    load = start_wrk(url, headers, 64, SECONDS + 4)
    time.sleep(2)
    subprocess.run([counters, "collect", "-p", str(pid), "--refresh-interval", "1", "--format", "csv", "-o", output,
                    "--counters", "System.Runtime[dotnet.gc.heap.total_allocated,dotnet.gc.pause.time]",
                    "--duration", f"00:00:00:{SECONDS:02d}"], check=True, stdout=subprocess.DEVNULL)
    result = wrk_result(load)
    allocated, paused = [], []
    with open(output, newline="") as samples:
        for row in csv.DictReader(samples):
            name = row["Counter Name"]
            (allocated if name.startswith("dotnet.gc.heap.total_allocated") else paused).append(float(row["Mean/Increment"]))
    if not allocated:
        raise RuntimeError("dotnet-counters reported no allocation samples")
    result["bytes_per_request"] = sum(allocated) / len(allocated) / result["rps"]
    result["gc_pause"] = sum(paused) / len(paused) if paused else 0.0
    return result


def main():
    ensure_wrk()
    subprocess.run(["dotnet", "build", "AppHost", "-c", "Release", "-v", "q", "-nologo"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    folder = tempfile.mkdtemp(prefix="shop-allocation-")
    try:
        counters = install_counters(folder)
        with apphost("Release") as (gateway, _, resources):
            replica = resources["inventory"]["replicas"][0]
            token, _ = admin_token(gateway)
            product = request(f"{gateway}/v1/products?pageSize=1", token=token)["items"][0]["id"]
            auth = {"Authorization": f"Bearer {token}"}
            read = replica["endpoint"] + f"/v1/products/{product}"
            wrk(read, auth, 64, 12)
            wrk(replica["endpoint"] + "/alive", {}, 64, 5)
            rows = []
            for round_number in range(1, ROUNDS + 1):
                rows.append((f"GET product, cache hit, round {round_number}", measure(counters, replica["pid"], read, auth, folder)))
                rows.append((f"GET /alive, round {round_number}", measure(counters, replica["pid"], replica["endpoint"] + "/alive", {}, folder)))

        print()
        print(f"machine: {os.cpu_count()} cores; Inventory replica 0 (Release), wrk -t2 -c64, {SECONDS} s sampled per row")
        print(f"{'scenario':34} {'req/s':>8} {'B/request':>10} {'GC pause':>9} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7} {'non-2xx':>8}")
        for name, r in rows:
            print(f"{name:34} {r['rps']:8.0f} {r['bytes_per_request']:10.0f} {r['gc_pause']:9.1%} {r['p50']:8.2f} {r['p95']:8.2f} "
                  f"{r['errors']:7d} {r['status']:8d}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


main()
