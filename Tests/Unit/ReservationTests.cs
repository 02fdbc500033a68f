using Shop.Inventory.Reservations;

namespace Shop.Tests.Unit;

public sealed class ReservationTests
{
    private static readonly DateTimeOffset ExpiresAt = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Before = ExpiresAt.AddSeconds(-1);

    private static Reservation A(ReservationStatus status) =>
        new(Guid.NewGuid(), Guid.NewGuid(), status, ExpiresAt, [new ReservationItem(Guid.NewGuid(), 2)]);

    [Fact]
    public void Confirming_an_active_reservation_before_it_expires_sells_its_units_once()
    {
        var reservation = A(ReservationStatus.Active);

        Assert.Equal(new Transition(TransitionResult.Done, StockChange.Sell), reservation.Confirm(Before));
        Assert.Equal(ReservationStatus.Confirmed, reservation.Status);
        Assert.Equal("Confirmed", reservation.ToResponse().Status);
        Assert.Same(Transition.AlreadyDone, reservation.Confirm(Before));
        Assert.Same(Transition.AlreadyDone, reservation.Confirm(ExpiresAt.AddHours(1)));
    }

    [Fact]
    public void A_reservation_cannot_be_confirmed_from_the_moment_it_expires_swept_or_not()
    {
        var due = A(ReservationStatus.Active);
        Assert.True(due.IsDue(ExpiresAt));
        Assert.Same(Transition.Expired, due.Confirm(ExpiresAt));
        Assert.Equal(ReservationStatus.Active, due.Status);

        var swept = A(ReservationStatus.Expired);
        Assert.False(swept.IsDue(ExpiresAt));
        Assert.Same(Transition.Expired, swept.Confirm(Before));
        Assert.Equal(ReservationStatus.Expired, swept.Status);
    }

    [Fact]
    public void Releasing_returns_reserved_units_and_a_confirmed_reservation_is_refunded_to_the_shelf()
    {
        var active = A(ReservationStatus.Active);
        Assert.Equal(new Transition(TransitionResult.Done, StockChange.Unreserve), active.Release(Before));
        Assert.Equal(ReservationStatus.Released, active.Status);

        var confirmed = A(ReservationStatus.Confirmed);
        Assert.Equal(new Transition(TransitionResult.Done, StockChange.Restock), confirmed.Release(ExpiresAt.AddDays(1)));
        Assert.Equal(ReservationStatus.Released, confirmed.Status);
    }

    [Fact]
    public void Releasing_a_reservation_past_its_expiry_that_the_sweep_has_not_reached_expires_it_as_the_sweep_would()
    {
        var due = A(ReservationStatus.Active);
        Assert.Equal("Expired", due.ToResponse(ExpiresAt).Status);

        Assert.Equal(new Transition(TransitionResult.Done, StockChange.Unreserve), due.Release(ExpiresAt));
        Assert.Equal(ReservationStatus.Expired, due.Status);
        Assert.Equal("Expired", due.ToResponse().Status);
        Assert.Same(Transition.AlreadyDone, due.Release(ExpiresAt.AddMinutes(5)));
        Assert.Same(Transition.Expired, due.Confirm(ExpiresAt));
    }

    [Theory]
    [InlineData(ReservationStatus.Released)]
    [InlineData(ReservationStatus.Expired)]
    public void Releasing_what_is_already_released_or_expired_changes_nothing(ReservationStatus status)
    {
        var reservation = A(status);

        Assert.Same(Transition.AlreadyDone, reservation.Release(Before));
        Assert.Equal(status, reservation.Status);
    }

    [Fact]
    public void A_released_reservation_cannot_be_confirmed()
    {
        var released = A(ReservationStatus.Released);

        Assert.Same(Transition.WrongState, released.Confirm(Before));
        Assert.Equal(ReservationStatus.Released, released.Status);
    }

    [Fact]
    public void A_reservation_holds_at_least_one_item_of_at_least_one_unit()
    {
        Assert.Throws<ArgumentException>(() => new Reservation(Guid.NewGuid(), Guid.NewGuid(), ReservationStatus.Active, ExpiresAt, []));
        Assert.Throws<ArgumentException>(() => new Reservation(Guid.NewGuid(), Guid.NewGuid(), ReservationStatus.Active, ExpiresAt,
            [new ReservationItem(Guid.NewGuid(), 1), new ReservationItem(Guid.NewGuid(), 0)]));
    }

    [Fact]
    public void An_active_reservation_past_its_expiry_reads_as_expired_before_the_sweeper_reaches_it()
    {
        var reservation = A(ReservationStatus.Active);

        Assert.Equal("Active", reservation.ToResponse(Before).Status);
        Assert.Equal("Expired", reservation.ToResponse(ExpiresAt).Status);
        Assert.Equal("Confirmed", A(ReservationStatus.Confirmed).ToResponse(ExpiresAt.AddDays(1)).Status);
        Assert.Equal("Released", A(ReservationStatus.Released).ToResponse(ExpiresAt.AddDays(1)).Status);
    }

    [Theory]
    [InlineData(900, 3600, true)]
    [InlineData(3600, 3600, true)]
    [InlineData(7200, 3600, false)]
    public void The_default_hold_may_not_be_longer_than_a_client_may_ask_for(int defaultTtl, int maxTtl, bool valid)
    {
        var options = new ReservationOptions { DefaultTtlSeconds = defaultTtl, MaxTtlSeconds = maxTtl };
        var results = new List<System.ComponentModel.DataAnnotations.ValidationResult>();

        Assert.Equal(valid, System.ComponentModel.DataAnnotations.Validator.TryValidateObject(options, new(options), results, validateAllProperties: true));
        Assert.Equal(valid ? 0 : 1, results.Count);
    }
}
