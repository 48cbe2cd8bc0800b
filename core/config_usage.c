#include "config_usage.h"

#include <stdbool.h>
#include <string.h>

#include "backfill_cli.h"
#include "settings.h"
#include "strbuf.h"

/* Lines stay within this many columns; docs start at DOC_COLUMN. */
#define WIDTH 79
#define DOC_COLUMN 29

const char config_usage_synopsis[] =
    "pgspout [-c FILE] [-d CONNINFO] [--slot NAME] [--publication NAME]\n"
    "        [--create-slot] [-t PATTERN]... [-T PATTERN]...\n"
    "        --sink NAME [-o KEY=VALUE]... [--endpos LSN]\n"
    "pgspout [-d CONNINFO] [--slot NAME] --drop-slot [--wait SECS]\n"
    "pgspout [-d CONNINFO] [--publication NAME] [-t PATTERN]...\n"
    "        [-T PATTERN]... --list-tables\n" BACKFILL_SYNOPSIS
    "pgspout --list-sinks | --help | --version\n";

/* Text placed in units (words, or groups of words kept together) after
 * `col` columns of a line, going on to new lines indented by `indent` before
 * a unit would pass WIDTH. */
typedef struct wrapper {
    FILE *out;
    int col, indent;
    bool fresh; /* nothing placed on this line yet */
} wrapper;

static void wrap_unit(wrapper *w, const char *unit, int len)
{
    if (!w->fresh && w->col + 1 + len > WIDTH) {
        fprintf(w->out, "\n%*s", w->indent, "");
        w->col = w->indent;
        w->fresh = true;
    }
    if (!w->fresh) {
        fputc(' ', w->out);
        w->col++;
    }
    fprintf(w->out, "%.*s", len, unit);
    w->col += len;
    w->fresh = false;
}

static void wrap_words(wrapper *w, const char *text)
{
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, " ");
        if (len > 0)
            wrap_unit(w, p, (int)len);
        p += len;
        while (*p == ' ')
            p++;
    }
}

static void print_option(FILE *out, const core_setting *s)
{
    strbuf flags = STRBUF_INIT;
    if (s->short_flag)
        sbuf_appendf(&flags, "  -%c, --%s", s->short_flag, s->long_flag);
    else
        sbuf_appendf(&flags, "      --%s", s->long_flag);
    if (s->arg_name)
        sbuf_appendf(&flags, "=%s", s->arg_name);
    /* A flag too long for its column gets a line of its own. */
    fprintf(out, "%-*s", DOC_COLUMN, flags.data);
    if ((int)flags.len >= DOC_COLUMN)
        fprintf(out, "\n%*s", DOC_COLUMN, "");
    wrapper w = {out, DOC_COLUMN, DOC_COLUMN, true};
    wrap_words(&w, s->doc);
    if (s->default_text) {
        strbuf unit = STRBUF_INIT;
        sbuf_appendf(&unit, "(default: %s)", s->default_text);
        wrap_unit(&w, unit.data, (int)unit.len);
        sbuf_free(&unit);
    }
    fputc('\n', out);
    sbuf_free(&flags);
}

/* "connection (--dbname), slot (--slot), ..., sinks": each key with the
 * flag of the same setting. */
static void print_config_keys(FILE *out)
{
    fputs("\nConfig file keys (-c FILE), each with its flag:\n  ", out);
    wrapper w = {out, 2, 2, true};
    size_t left = 0;
    for (size_t i = 0; i < n_core_settings; i++)
        left += core_settings[i].key != NULL;
    for (size_t i = 0; i < n_core_settings; i++) {
        const core_setting *s = &core_settings[i];
        if (!s->key)
            continue;
        strbuf unit = STRBUF_INIT;
        sbuf_append_str(&unit, s->key);
        if (s->long_flag)
            sbuf_appendf(&unit, " (--%s)", s->long_flag);
        if (--left > 0)
            sbuf_append_char(&unit, ',');
        wrap_unit(&w, unit.data, (int)unit.len);
        sbuf_free(&unit);
    }
    fputc('\n', out);
}

void config_print_synopsis(FILE *out, const char *synopsis)
{
    fputs("Usage:\n", out);
    for (const char *line = synopsis; *line;) {
        const char *nl = strchr(line, '\n');
        fprintf(out, "  %.*s\n", (int)(nl - line), line);
        line = nl + 1;
    }
}

void config_print_options(FILE *out, const core_setting *table, size_t n)
{
    fputs("\nOptions:\n", out);
    for (size_t i = 0; i < n; i++) {
        if (table[i].long_flag)
            print_option(out, &table[i]);
    }
}

void config_print_usage(FILE *out)
{
    fputs("pgspout streams PostgreSQL changes (logical replication) to "
          "sinks.\n\n",
          out);
    config_print_synopsis(out, config_usage_synopsis);
    config_print_options(out, core_settings, n_core_settings);
    print_config_keys(out);
    fputs("\n\"pgspout backfill --help\" lists the options of pgspout "
          "backfill.\n",
          out);
}
