using Microsoft.Extensions.Options;
using Shop.ServiceDefaults.Data;

namespace Shop.Inventory.Reservations;

/// <summary>Returns the stock of expired reservations. Every replica runs it; SKIP LOCKED keeps each expiry single.</summary>
internal sealed class ReservationSweeper(IServiceProvider services, ReservationStore store, IOptions<ReservationOptions> options, ILogger<ReservationSweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await services.WaitForMigrationsAsync<InventoryDbContext>(stoppingToken);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.SweepIntervalSeconds));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                int released;
                do
                {
                    released = await store.ExpireDueAsync(100, stoppingToken);
                    if (released > 0)
                    {
                        logger.LogInformation("Expired {Reservations} reservations and returned their stock", released);
                    }
                }
                while (released > 0);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Sweeping expired reservations failed; trying again next tick");
            }
        }
    }
}
