using Shop.Hosting.ApplicationModel;
using Shop.Hosting.Orchestration;

namespace Shop.Tests.Unit;

public sealed class ManagedProcessTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("shop-path-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task A_set_up_command_of_a_cancelled_start_is_stopped_before_the_start_gives_up()
    {
        var pidFile = Path.Combine(_directory, "pid");
        using var cancel = new CancellationTokenSource();
        var running = PostgresLauncher.RunToEndAsync("/bin/sh", ["-c", $"echo $$ > {pidFile}.tmp && mv {pidFile}.tmp {pidFile} && exec sleep 60"], cancel.Token);
        var pid = 0;
        try
        {
            for (var waited = 0; !File.Exists(pidFile) && waited < 200; waited++)
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }

            pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            cancel.Cancel();

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
            // Before, the command (initdb, in a real start) went on running after the AppHost had given up.
            Assert.False(Directory.Exists($"/proc/{pid}"), $"the command (pid {pid}) was left running");
        }
        finally
        {
            if (pid > 0 && Directory.Exists($"/proc/{pid}"))
            {
                using var left = System.Diagnostics.Process.GetProcessById(pid);
                left.Kill();
            }
        }
    }

    [Fact]
    public void A_bare_name_is_installed_when_some_directory_on_the_path_holds_it_as_an_executable_file()
    {
        var tool = Path.Combine(_directory, "shop-tool");
        File.WriteAllText(tool, "#!/bin/sh\n");
        var path = $"/nonexistent-dir::{_directory}";

        Assert.False(ManagedProcess.IsInstalled("shop-tool", "/", path));

        File.SetUnixFileMode(tool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        Assert.True(ManagedProcess.IsInstalled("shop-tool", "/", path));
        Assert.False(ManagedProcess.IsInstalled("shop-tool", "/", "/nonexistent-dir"));
        Assert.False(ManagedProcess.IsInstalled("shop-tool-missing", "/", path));
    }

    [Fact]
    public void A_name_with_a_slash_is_looked_at_where_it_points_and_not_on_the_path()
    {
        var tool = Path.Combine(_directory, "shop-tool");
        File.WriteAllText(tool, "#!/bin/sh\n");
        File.SetUnixFileMode(tool, UnixFileMode.UserRead | UnixFileMode.UserExecute);

        Assert.True(ManagedProcess.IsInstalled(tool, "/", path: ""));
        Assert.False(ManagedProcess.IsInstalled(Path.Combine(_directory, "other"), "/", path: _directory));
        Assert.False(ManagedProcess.IsInstalled(_directory, "/", path: ""));
    }

    [Fact]
    public void Relative_paths_and_relative_or_empty_path_entries_are_taken_from_the_working_directory()
    {
        Directory.CreateDirectory(Path.Combine(_directory, "bin"));
        var tool = Path.Combine(_directory, "bin", "shop-tool");
        File.WriteAllText(tool, "#!/bin/sh\n");
        File.SetUnixFileMode(tool, UnixFileMode.UserRead | UnixFileMode.UserExecute);

        Assert.True(ManagedProcess.IsInstalled("bin/shop-tool", _directory, path: ""));
        Assert.False(ManagedProcess.IsInstalled("bin/shop-tool", "/", path: ""));
        Assert.True(ManagedProcess.IsInstalled("shop-tool", _directory, path: "/nonexistent-dir:bin"));
        Assert.False(ManagedProcess.IsInstalled("shop-tool", _directory, path: "/nonexistent-dir"));
        Assert.True(ManagedProcess.IsInstalled("shop-tool", Path.Combine(_directory, "bin"), path: "/nonexistent-dir:"));
    }

    [Fact]
    public void The_process_path_is_searched_when_none_is_given()
    {
        Assert.True(ManagedProcess.IsInstalled("sh", "/"));
        Assert.False(ManagedProcess.IsInstalled($"shop-no-such-program-{Guid.NewGuid():N}", "/"));
    }

    [Fact]
    public async Task The_watchdog_takes_an_apphost_that_has_ended_but_is_not_yet_reaped_for_gone()
    {
        var cancellation = TestContext.Current.CancellationToken;
        // A parent that never reaps its child, which ends at once: a zombie for as long as the test runs.
        using var holder = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("perl",
            ["-e", "$| = 1; my $child = fork(); exit 0 unless $child; print \"$child\\n\"; sleep 30"])
        {
            RedirectStandardOutput = true,
        })!;
        using var child = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("setsid", ["sleep", "60"]))!;
        try
        {
            var zombie = int.Parse((await holder.StandardOutput.ReadLineAsync(cancellation))!, System.Globalization.CultureInfo.InvariantCulture);
            for (var wait = 0; File.ReadAllText($"/proc/{zombie}/stat").Split(") ")[1][0] != 'Z'; wait++)
            {
                Assert.True(wait < 100, "the stand-in AppHost did not end");
                await Task.Delay(50, cancellation);
            }

            using var run = new RunDirectory();
            run.Register(child.Id);
            run.StartWatchdog(zombie);

            // Before, a zombie passed for alive (its start time still matched), and the run's processes outlived it.
            Assert.True(child.WaitForExit(TimeSpan.FromSeconds(10)), "the watchdog took a zombie AppHost for a live one");
        }
        finally
        {
            holder.Kill();
            if (!child.HasExited)
            {
                child.Kill();
            }
        }
    }

    [Fact]
    public async Task A_run_that_fails_to_start_removes_its_folder()
    {
        using var busy = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        busy.Start();
        var port = ((System.Net.IPEndPoint)busy.LocalEndpoint).Port;
        var builder = Shop.Hosting.DistributedApplication.CreateBuilder([$"--AppHost:DashboardPort={port}"]);
        builder.AddParameter("greeting", "hello");
        var app = builder.Build();
        var runDirectory = app.RunDirectory;
        Assert.True(Directory.Exists(runDirectory));

        // The dashboard cannot listen: before, the exception left the folder behind, with no watchdog to remove it.
        await Assert.ThrowsAnyAsync<IOException>(() => app.RunAsync(TestContext.Current.CancellationToken));

        Assert.False(Directory.Exists(runDirectory), "the run's folder outlived its failed start");
    }

    [Fact]
    public void A_run_folder_and_the_folders_in_it_are_its_users_alone_and_new_to_it()
    {
        const UnixFileMode userOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        using var run = new RunDirectory();
        using var other = new RunDirectory();

        Assert.Equal(userOnly, File.GetUnixFileMode(run.Path));
        Assert.Equal(userOnly, File.GetUnixFileMode(run.Combine("messaging")));
        // Straight in the temporary folder, under a name made for it: no shared parent that another user could own.
        Assert.Equal(Path.GetFullPath(Path.GetTempPath()).TrimEnd('/'), Path.GetDirectoryName(run.Path));
        Assert.StartsWith(RunDirectory.FolderPrefix, Path.GetFileName(run.Path), StringComparison.Ordinal);
        Assert.NotEqual(run.Path, other.Path);
    }

    [Fact]
    public async Task On_stop_every_service_has_exited_before_a_backing_service_is_sent_its_stop_signal()
    {
        var postgres = new PostgresServerResource("postgres");
        var orders = new ProjectResource("orders", new StandInProject());
        orders.Annotations.Add(new EndpointAnnotation("http", Port: null, IsExternal: false));
        orders.Annotations.Add(new WaitAnnotation(postgres));
        // The service takes a second to stop, as one finishing its work does; the server stops at once.
        var launchers = new Dictionary<Resource, IResourceLauncher> { [postgres] = new StandIn("exit 0"), [orders] = new StandIn("sleep 1; exit 0") };
        var orchestrator = new Orchestrator([postgres, orders], new OrchestratorOptions("Testing", null, null), resource => launchers[resource]);
        var changes = new List<(string Name, ResourceState State)>();
        orchestrator.Notifications.Changed += snapshot =>
        {
            lock (changes)
            {
                changes.Add((snapshot.Name, snapshot.State));
            }
        };
        try
        {
            await orchestrator.StartAsync();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            await orchestrator.Notifications.WaitForResourceHealthyAsync("orders", timeout.Token);
        }
        finally
        {
            await orchestrator.DisposeAsync();
        }

        var serviceExited = changes.IndexOf(("orders", ResourceState.Stopped));
        var serverAsked = changes.IndexOf(("postgres", ResourceState.Stopping));
        Assert.True(serviceExited >= 0 && serverAsked > serviceExited, string.Join(", ", changes));
    }

    /// <summary>A process that runs until SIGTERM and then runs <paramref name="onStop"/>; healthy all along.</summary>
    private sealed class StandIn(string onStop) : IResourceLauncher
    {
        public TimeSpan StopGrace => TimeSpan.FromSeconds(10);

        public Task<ProcessSpec> PrepareAsync(ReplicaRuntime replica, CancellationToken cancellationToken) =>
            Task.FromResult(new ProcessSpec("sh", ["-c", $"trap '{onStop}' TERM; while :; do sleep 0.1; done"], "/", new Dictionary<string, string?>()));

        public Task<bool> ProbeAsync(ReplicaRuntime replica, CancellationToken cancellationToken) => Task.FromResult(true);
    }

    private sealed class StandInProject : IProjectMetadata
    {
        public string ProjectPath => "";

        public string TargetPath => "";
    }
}
