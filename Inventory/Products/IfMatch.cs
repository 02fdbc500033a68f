using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Shop.Inventory.Products;

/// <summary>
/// An <c>If-Match</c> header as RFC 9110 (section 13.1.1) reads it: absent, <c>*</c> (any current representation),
/// or a list of entity tags, of which one must equal the current one by strong comparison (a weak tag never matches).
/// </summary>
public sealed class IfMatch
{
    private readonly IList<EntityTagHeaderValue> _tags;

    private IfMatch(bool present, bool malformed, IList<EntityTagHeaderValue> tags) =>
        (IsPresent, IsMalformed, _tags) = (present, malformed, tags);

    /// <summary>The header was sent with at least one value.</summary>
    public bool IsPresent { get; }

    /// <summary>The header was sent but is not a list of entity tags or <c>*</c>; it can match nothing.</summary>
    public bool IsMalformed { get; }

    public static IfMatch Parse(StringValues header)
    {
        if (StringValues.IsNullOrEmpty(header) || header.All(string.IsNullOrWhiteSpace))
        {
            return new IfMatch(present: false, malformed: false, []);
        }

        return EntityTagHeaderValue.TryParseStrictList(header, out var tags) && tags.Count > 0
            ? new IfMatch(present: true, malformed: false, tags)
            : new IfMatch(present: true, malformed: true, []);
    }

    /// <summary>The header is <c>*</c>: any current representation matches, whatever its version.</summary>
    public bool IsAny => _tags.Any(candidate => candidate.Equals(EntityTagHeaderValue.Any));

    /// <summary>Whether a resource whose entity tag is <paramref name="current"/> satisfies the condition.</summary>
    public bool Matches(string current)
    {
        var tag = new EntityTagHeaderValue(current);
        return _tags.Any(candidate => candidate.Equals(EntityTagHeaderValue.Any) || candidate.Compare(tag, useStrongComparison: true));
    }
}
