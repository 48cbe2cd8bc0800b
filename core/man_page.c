#include "man_page.h"

#include <string.h>

#include "backfill_cli.h"
#include "config_usage.h"
#include "options.h"
#include "settings.h"

/* ---- roff ---- */

/* Text as roff prints it literally: a backslash is roff's escape, and a
 * line that starts with a dot or a quote would be taken for a request. */
static void put_text(FILE *out, const char *text)
{
    if (text[0] == '.' || text[0] == '\'')
        fputs("\\&", out);
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            fputs("\\e", out);
        else
            fputc(*p, out);
    }
}

/* A name to type as is (a flag, a key): hyphens are minus signs, so that
 * a reader can copy them from the page into a shell. */
static void put_literal(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '-')
            fputs("\\-", out);
        else if (*p == '\\')
            fputs("\\e", out);
        else
            fputc(*p, out);
    }
}

static void put_header(FILE *out, const char *title, int section,
                       const char *version)
{
    fprintf(out, ".TH %s %d \"\" \"pgspout %s\" \"%s\"\n", title, section,
            version, section == 1 ? "User Commands" : "File Formats");
}

static void put_synopsis_lines(FILE *out, const char *synopsis)
{
    fputs(".nf\n", out);
    for (const char *line = synopsis; *line;) {
        const char *nl = strchr(line, '\n');
        char one[256];
        snprintf(one, sizeof one, "%.*s", (int)(nl - line), line);
        put_literal(out, one);
        fputc('\n', out);
        line = nl + 1;
    }
    fputs(".fi\n", out);
}

/* ---- pgspout(1) ---- */

/* .TP, then "-d, --dbname=CONNINFO", then the doc, its default and the
 * config-file key of the same setting. */
static void put_flag(FILE *out, const core_setting *s)
{
    fputs(".TP\n", out);
    if (s->short_flag)
        fprintf(out, "\\fB\\-%c\\fR, ", s->short_flag);
    fputs("\\fB\\-\\-", out);
    put_literal(out, s->long_flag);
    fputs("\\fR", out);
    if (s->arg_name)
        fprintf(out, "=\\fI%s\\fR", s->arg_name);
    fputc('\n', out);
    put_text(out, s->doc);
    fputs(".\n", out);
    if (s->default_text) {
        fputs("Default: ", out);
        put_text(out, s->default_text);
        fputs(".\n", out);
    }
    if (s->key) {
        fputs("Config file key: \\fB", out);
        put_literal(out, s->key);
        fputs("\\fR.\n", out);
    }
}

static void put_flags(FILE *out, const core_setting *table, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].long_flag)
            put_flag(out, &table[i]);
}

void man_page_write_command(FILE *out, const char *version)
{
    put_header(out, "PGSPOUT", 1, version);
    fputs(".SH NAME\npgspout \\- stream PostgreSQL changes (logical "
          "replication) to sinks\n.SH SYNOPSIS\n",
          out);
    put_synopsis_lines(out, config_usage_synopsis);
    fputs(".SH DESCRIPTION\n"
          "pgspout reads a logical replication slot with the pgoutput plugin "
          "and delivers every committed change to its sinks: shared objects "
          "loaded at start (file, kinesis, elastic, bigquery, kafka, and "
          "sinks built by third parties against the pgspout SDK).\n"
          "A position is confirmed to the server only once every sink made "
          "everything before it durable, so a restart resumes from the slot "
          "and nothing committed is lost.\n"
          "Settings come from the command line and from a config file "
          "(\\fB\\-c\\fR \\fIFILE\\fR, see \\fBpgspout.conf\\fR(5)); the "
          "command line wins.\n"
          ".SH OPTIONS\n",
          out);
    put_flags(out, core_settings, n_core_settings);
    fputs(".SH BACKFILL OPTIONS\n"
          "\\fBpgspout backfill\\fR asks the pgspout streaming from a slot to "
          "copy tables again, through the WAL. It takes these flags:\n",
          out);
    put_flags(out, backfill_cli_settings, n_backfill_cli_settings);
    fputs(".SH EXIT STATUS\n"
          ".TP\n.B 0\n"
          "A clean stop: the end position reached, or SIGINT or SIGTERM; "
          "sinks flushed and durable positions confirmed.\n"
          ".TP\n.B 1\n"
          "A runtime failure; nothing unacknowledged was confirmed, and a "
          "restart resumes from the slot.\n"
          ".TP\n.B 2\n"
          "A usage or configuration error, found before anything connects; "
          "a config file error names the file, the line and the key.\n"
          ".SH ENVIRONMENT\n"
          "The \\fBPG\\fR* variables work as in libpq (\\fBPGHOST\\fR, "
          "\\fBPGSERVICE\\fR, ...). The default state directory follows "
          "\\fBXDG_STATE_HOME\\fR, else \\fBHOME\\fR.\n"
          ".SH SEE ALSO\n"
          ".BR pgspout.conf (5),\n"
          ".BR pg_recvlogical (1)\n",
          out);
}

/* ---- pgspout.conf(5) ---- */

static void put_bounds(FILE *out, const core_setting *s, const char *unit)
{
    fprintf(out, "%s, %d to %d", unit, s->min, s->max);
}

static void put_choices(FILE *out, const char *const *choices)
{
    fputs("one of ", out);
    for (size_t i = 0; choices[i]; i++)
        fprintf(out, "%s%s", i ? ", " : "", choices[i]);
}

/* The value a key takes, as the config file spells it. */
static void put_setting_type(FILE *out, const core_setting *s)
{
    switch (s->type) {
    case SETTING_BOOL:
        fputs("true or false", out);
        return;
    case SETTING_SECONDS:
        put_bounds(out, s, "seconds");
        return;
    case SETTING_INTEGER:
        put_bounds(out, s, "an integer");
        return;
    case SETTING_CHOICE:
        put_choices(out, s->choices);
        return;
    case SETTING_PATTERNS:
    case SETTING_PLUGIN_DIRS:
        fputs("a list of strings", out);
        return;
    case SETTING_SINKS:
        fputs("a list of sink groups (see SINKS)", out);
        return;
    case SETTING_BYTES:
        fputs("a size: an integer, or a string with a k, M or G suffix", out);
        return;
    default:
        fputs("a string", out);
        return;
    }
}

static void put_key(FILE *out, const core_setting *s)
{
    fputs(".TP\n\\fB", out);
    put_literal(out, s->key);
    fputs("\\fR (", out);
    put_setting_type(out, s);
    if (s->default_text) {
        fputs("; default ", out);
        put_text(out, s->default_text);
    }
    fputs(")\n", out);
    put_text(out, s->doc);
    fputs(".\n", out);
    if (s->long_flag) {
        fputs("Command line: \\fB\\-\\-", out);
        put_literal(out, s->long_flag);
        fputs("\\fR.\n", out);
    }
}

static void put_sink_option(FILE *out, const pgspout_option_def *def)
{
    bool family = (def->flags & PGSPOUT_OPTF_PREFIX) != 0;
    fputs(".TP\n\\fB", out);
    put_literal(out, def->name);
    fprintf(out, "%s\\fR (%s", family ? "\\fIname\\fB" : "",
            option_type_name(def->type));
    if (def->flags & PGSPOUT_OPTF_REQUIRED)
        fputs("; required", out);
    else if (def->default_value && (def->flags & PGSPOUT_OPTF_SECRET))
        fputs("; default withheld: a secret", out);
    else if (def->default_value) {
        fputs("; default ", out);
        put_text(out, def->default_value[0] ? def->default_value : "\"\"");
    }
    if (def->min < def->max)
        fprintf(out, "; %g to %g", def->min, def->max);
    fputs(")\n", out);
    put_text(out, def->doc ? def->doc : "");
    fputs(".\n", out);
    if (def->type == PGSPOUT_OPT_STRING && def->choices)
        fprintf(out, "One of: %s.\n", def->choices);
}

static void put_sink(FILE *out, const pgspout_sink_descriptor *d)
{
    fprintf(out, ".SS %s\n", d->name);
    put_text(out, d->description);
    fprintf(out, " (version %s, ABI %u.%u).\n", d->version, d->abi_major,
            d->abi_minor);
    if (!d->options || !d->options[0].name) {
        fputs(".PP\nNo options.\n", out);
        return;
    }
    for (const pgspout_option_def *def = d->options; def->name; def++)
        put_sink_option(out, def);
}

static const char config_description[] =
    ".SH DESCRIPTION\n"
    "The file \\fBpgspout \\-c\\fR \\fIFILE\\fR reads, in libconfig's "
    "syntax: \\fIkey\\fR \\fB=\\fR \\fIvalue\\fR\\fB;\\fR for each setting "
    "below, strings in double quotes, lists in brackets. A setting given on "
    "the command line wins over the file. An unknown key, a value of the "
    "wrong type or out of range stops pgspout with exit status 2 and a "
    "message naming the file, the line and the key.\n"
    ".PP\n"
    "The sinks are a list of groups, each with \\fBname\\fR (how logs and "
    "metrics name it), \\fBtype\\fR (the sink library), optional "
    "\\fBinclude\\fR and \\fBexclude\\fR table patterns, and "
    "\\fBoptions\\fR, a group of the sink's own options (SINKS below):\n"
    ".PP\n.nf\n"
    "sinks = (\n"
    "  { name = \"archive\"; type = \"file\";\n"
    "    options = { path = \"/var/lib/pgspout/out.jsonl\"; }; }\n"
    ");\n"
    ".fi\n"
    ".SH SETTINGS\n";

void man_page_write_config(FILE *out, const char *version,
                           const pgspout_sink_descriptor *const *sinks,
                           size_t nsinks)
{
    put_header(out, "PGSPOUT.CONF", 5, version);
    fputs(".SH NAME\npgspout.conf \\- the configuration file of pgspout\n",
          out);
    fputs(config_description, out);
    for (size_t i = 0; i < n_core_settings; i++)
        if (core_settings[i].key)
            put_key(out, &core_settings[i]);
    fputs(".SH SINKS\n"
          "Options of the sinks installed with pgspout, as "
          "\\fBpgspout \\-\\-list\\-sinks\\fR prints them. A secret's value "
          "is never printed or logged.\n",
          out);
    for (size_t i = 0; i < nsinks; i++)
        put_sink(out, sinks[i]);
    fputs(".SH SEE ALSO\n.BR pgspout (1)\n", out);
}
