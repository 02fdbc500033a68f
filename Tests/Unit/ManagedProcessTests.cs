using Shop.Hosting.Orchestration;

namespace Shop.Tests.Unit;

public sealed class ManagedProcessTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("shop-path-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

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
}
