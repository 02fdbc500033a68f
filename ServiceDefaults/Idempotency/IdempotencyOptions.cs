using System.ComponentModel.DataAnnotations;

namespace Shop.ServiceDefaults.Idempotency;

public sealed class IdempotencyOptions
{
    public const string Section = "Idempotency";

    /// <summary>
    /// How long a request holds its key before a retry may take it over. Longer than any request should run: until then
    /// a retry is told 409 "in progress"; after it, the first attempt is presumed dead and can no longer complete the key.
    /// </summary>
    [Range(1, 86400)]
    public int InProgressLeaseSeconds { get; set; } = 60;
}
