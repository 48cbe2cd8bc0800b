#include "config_tokens.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "strbuf.h"

/* Where a token is among the settings, to name its key as the rest of the
 * config errors do (sinks.[0].options.path): one frame per open group or
 * list. Deeper nesting than this is not followed (the key is then
 * unknown); nothing real nests that far. */
#define MAX_FRAMES 32

typedef struct frame {
    const char *name; /* the setting that opened it, or NULL: a list element */
    size_t name_len;
    int element;   /* when name is NULL: its index in the enclosing list */
    bool list;     /* a list or array, whose elements are counted */
    int next_elem; /* for a list: the index of the element being read */
} frame;

typedef struct scan {
    const char *file;
    const char *p, *end;
    int line;
    frame frames[MAX_FRAMES];
    int depth;           /* open frames, possibly more than MAX_FRAMES */
    const char *pending; /* a name followed by '=' or ':', awaiting a value */
    size_t pending_len;
    const char *word; /* the last name or number */
    size_t word_len;
    char *err;
    size_t errlen;
} scan;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Names, numbers (with signs, exponents, hex digits and L suffixes) and
 * the keywords true/false: what the scanner reads as one token. */
static bool is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '*' || c == '-' ||
           c == '+' || c == '.';
}

static void append_frame(strbuf *sb, const frame *f, const frame *parent)
{
    if (sb->len > 0)
        sbuf_append_char(sb, '.');
    if (f->name)
        sbuf_append(sb, f->name, f->name_len);
    else if (parent && parent->list)
        sbuf_appendf(sb, "[%d]", f->element);
}

/* The key of the value being read: the open frames, then the pending name
 * or the element's index. Empty when unknown. */
static void current_key(const scan *s, strbuf *key)
{
    if (s->depth > MAX_FRAMES)
        return;
    for (int i = 0; i < s->depth; i++)
        append_frame(key, &s->frames[i], i > 0 ? &s->frames[i - 1] : NULL);
    const frame *top = s->depth > 0 ? &s->frames[s->depth - 1] : NULL;
    frame value = {s->pending, s->pending_len, top ? top->next_elem : 0, false,
                   0};
    if (s->pending || (top && top->list))
        append_frame(key, &value, top);
}

static bool too_long(scan *s, int line, const char *what, bool with_key)
{
    strbuf key = STRBUF_INIT;
    if (with_key)
        current_key(s, &key);
    set_error(s->err, s->errlen,
              "%s:%d: %s%s%s longer than the limit of 64 KiB (%d bytes)",
              s->file, line, key.len ? key.data : "", key.len ? ": " : "", what,
              CONFIG_TOKEN_MAX);
    sbuf_free(&key);
    return false;
}

/* A string literal: to the next unescaped quote, across lines. */
static bool scan_string(scan *s)
{
    int line = s->line;
    const char *start = ++s->p;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\' && s->end - s->p > 1)
            s->p++;
        if (*s->p == '\n')
            s->line++;
        s->p++;
    }
    if ((size_t)(s->p - start) > CONFIG_TOKEN_MAX)
        return too_long(s, line, "a string", true);
    if (s->p < s->end)
        s->p++;
    return true;
}

/* A run of characters the scanner reads as one token. */
static bool scan_run(scan *s, bool (*in_run)(char), const char *what)
{
    const char *start = s->p;
    while (s->p < s->end && in_run(*s->p))
        s->p++;
    if ((size_t)(s->p - start) > CONFIG_TOKEN_MAX)
        return too_long(s, s->line, what, false);
    return true;
}

static bool not_newline(char c)
{
    return c != '\n';
}

/* A C comment is read a character at a time: no limit. */
static void skip_c_comment(scan *s)
{
    s->p += 2;
    while (s->p < s->end &&
           !(*s->p == '*' && s->end - s->p > 1 && s->p[1] == '/')) {
        s->line += *s->p == '\n';
        s->p++;
    }
    s->p = s->p < s->end ? s->p + 2 : s->end;
}

static void open_frame(scan *s, bool list)
{
    if (s->depth < MAX_FRAMES) {
        const frame *top = s->depth > 0 ? &s->frames[s->depth - 1] : NULL;
        frame f = {s->pending, s->pending_len, top ? top->next_elem : 0, list,
                   0};
        s->frames[s->depth] = f;
    }
    s->depth++;
    s->pending = NULL;
}

/* Punctuation: what it says about where the next value belongs. */
static void punctuation(scan *s, char c)
{
    frame *top = s->depth > 0 && s->depth <= MAX_FRAMES
                     ? &s->frames[s->depth - 1]
                     : NULL;
    switch (c) {
    case '=':
    case ':':
        s->pending = s->word;
        s->pending_len = s->word_len;
        break;
    case '{':
    case '(':
    case '[':
        open_frame(s, c != '{');
        break;
    case '}':
    case ')':
    case ']':
        s->depth -= s->depth > 0;
        s->pending = NULL;
        break;
    case ',':
        if (top && top->list)
            top->next_elem++;
        s->pending = NULL;
        break;
    case ';':
        s->pending = NULL;
        break;
    }
}

static bool scan_token(scan *s)
{
    char c = *s->p;
    char next = s->end - s->p > 1 ? s->p[1] : '\0';
    if (c == '"')
        return scan_string(s);
    if (c == '#' || (c == '/' && next == '/'))
        return scan_run(s, not_newline, "a comment");
    if (c == '/' && next == '*') {
        skip_c_comment(s);
        return true;
    }
    if (is_blank(c))
        return scan_run(s, is_blank, "a run of blanks");
    if (is_word_char(c)) {
        const char *start = s->p;
        if (!scan_run(s, is_word_char, "a name or number"))
            return false;
        s->word = start;
        s->word_len = (size_t)(s->p - start);
        return true;
    }
    s->line += c == '\n';
    punctuation(s, c);
    s->p++;
    return true;
}

bool config_tokens_check(const char *file, const char *text, size_t len,
                         char *err, size_t errlen)
{
    scan s;
    memset(&s, 0, sizeof s);
    s.file = file;
    s.p = text;
    s.end = text + len;
    s.line = 1;
    s.err = err;
    s.errlen = errlen;
    while (s.p < s.end)
        if (!scan_token(&s))
            return false;
    return true;
}
