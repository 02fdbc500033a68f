namespace Shop.ServiceDefaults.Data;

/// <summary>
/// Cuts SQL text into its statements at the semicolons PostgreSQL would end them at: not inside a string
/// (<c>'…'</c>, <c>E'…'</c> with its backslash escapes), a quoted identifier (<c>"…"</c>), a dollar-quoted body
/// (<c>$tag$…$tag$</c>) or a comment (<c>-- …</c>, nested <c>/* … */</c>). A piece that is only comments and blanks is
/// no statement. Comments inside a statement are kept: PostgreSQL ignores them.
/// </summary>
public static class SqlStatements
{
    public static IReadOnlyList<string> Split(string sql)
    {
        var statements = new List<string>();
        var start = 0;
        var hasCode = false;
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            var next = i + 1 < sql.Length ? sql[i + 1] : '\0';
            if (c == '-' && next == '-')
            {
                i = sql.IndexOf('\n', i) is var end and >= 0 ? end + 1 : sql.Length;
                continue;
            }

            if (c == '/' && next == '*')
            {
                i = SkipBlockComment(sql, i);
                continue;
            }

            if (c == ';')
            {
                Add(i + 1);
                i++;
                continue;
            }

            hasCode |= !char.IsWhiteSpace(c);
            i = c switch
            {
                '\'' => SkipQuoted(sql, i, '\'', backslashEscapes: i > 0 && sql[i - 1] is 'E' or 'e' && (i < 2 || !IsIdentifierChar(sql[i - 2]))),
                '"' => SkipQuoted(sql, i, '"', backslashEscapes: false),
                '$' when (i == 0 || !IsIdentifierChar(sql[i - 1])) && DollarTag(sql, i) is { } tag => SkipDollarQuoted(sql, i, tag),
                _ => i + 1,
            };
        }

        Add(sql.Length);
        return statements;

        void Add(int end)
        {
            if (hasCode)
            {
                statements.Add(sql[start..end].Trim());
            }

            start = end;
            hasCode = false;
        }
    }

    private static bool IsIdentifierChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '$';

    private static int SkipQuoted(string sql, int open, char quote, bool backslashEscapes)
    {
        for (var i = open + 1; i < sql.Length; i++)
        {
            if (backslashEscapes && sql[i] == '\\')
            {
                i++;
            }
            else if (sql[i] == quote)
            {
                if (i + 1 < sql.Length && sql[i + 1] == quote)
                {
                    i++;
                    continue;
                }

                return i + 1;
            }
        }

        throw new FormatException($"A {(quote == '"' ? "quoted identifier" : "string")} opened at character {open} is never closed.");
    }

    private static int SkipBlockComment(string sql, int open)
    {
        var depth = 0;
        for (var i = open; i < sql.Length - 1; i++)
        {
            if (sql[i] == '/' && sql[i + 1] == '*')
            {
                depth++;
                i++;
            }
            else if (sql[i] == '*' && sql[i + 1] == '/')
            {
                depth--;
                i++;
                if (depth == 0)
                {
                    return i + 1;
                }
            }
        }

        throw new FormatException($"A comment opened at character {open} is never closed.");
    }

    /// <summary>The <c>$tag$</c> opening at <paramref name="at"/>, or null when the <c>$</c> opens none (a parameter such as <c>$1</c>).</summary>
    private static string? DollarTag(string sql, int at)
    {
        var i = at + 1;
        if (i < sql.Length && (char.IsAsciiLetter(sql[i]) || sql[i] == '_'))
        {
            while (i < sql.Length && (char.IsAsciiLetterOrDigit(sql[i]) || sql[i] == '_'))
            {
                i++;
            }
        }

        return i < sql.Length && sql[i] == '$' ? sql[at..(i + 1)] : null;
    }

    private static int SkipDollarQuoted(string sql, int open, string tag)
    {
        var close = sql.IndexOf(tag, open + tag.Length, StringComparison.Ordinal);
        return close >= 0 ? close + tag.Length : throw new FormatException($"A {tag} body opened at character {open} is never closed.");
    }
}
