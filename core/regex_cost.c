#include "regex_cost.h"

#include <stdbool.h>
#include <stdlib.h>

#include "strbuf.h"

/* Figures stop growing here, so that products never overflow a double
 * (and never reach infinity, where 0 * inf would be NaN). */
#define COST_CAP 1e18

/* What glibc keeps per node (its tree node, its DFA node and that node's
 * successor and closure sets), in closure entries: about 200 bytes
 * against 16, measured on glibc 2.36. */
#define NODE_WEIGHT 12

/* The shape of a sub-expression, as far as the estimate needs it. */
typedef struct expr_cost {
    double nodes;   /* after expanding bounded repetition */
    double closure; /* total size of the epsilon closures of its nodes */
    double head;    /* nodes reachable from its start without input */
    double tail;    /* nodes from which its end is reachable without input */
    /* the largest set of nodes reachable right after one of its
     * characters: among the characters after which its end cannot be
     * reached without input (inner), and among those after which it can
     * (outer, counting only the part within it) */
    double width_inner;
    double width_outer;
    bool nullable; /* matches the empty string */
} expr_cost;

/* One open group: the alternatives completed so far, and of the current
 * one everything before its last atom and that atom (which a following
 * quantifier applies to). */
typedef struct cost_frame {
    expr_cost alternatives;
    bool has_alternatives;
    expr_cost prefix;
    expr_cost last;
} cost_frame;

struct regex_cost {
    cost_frame *frames;
    size_t depth; /* frames[0] is the whole expression */
    size_t cap;
};

static double capped(double v)
{
    return v > COST_CAP ? COST_CAP : v;
}

static double max2(double a, double b)
{
    return capped(a > b ? a : b);
}

static expr_cost empty_cost(void)
{
    return (expr_cost){0, 0, 0, 0, 0, 0, true};
}

/* x then y: whatever reaches x's end also reaches y's start. */
static expr_cost concat_cost(expr_cost x, expr_cost y)
{
    expr_cost r;
    r.nodes = capped(x.nodes + y.nodes);
    r.closure = capped(x.closure + y.closure + x.tail * y.head);
    r.head = capped(x.nullable ? x.head + y.head : x.head);
    r.tail = capped(y.nullable ? x.tail + y.tail : y.tail);
    double x_outer = x.width_outer + y.head;
    r.width_inner =
        max2(max2(x.width_inner, y.width_inner), y.nullable ? 0 : x_outer);
    r.width_outer = y.nullable ? max2(y.width_outer, x_outer) : y.width_outer;
    r.nullable = x.nullable && y.nullable;
    return r;
}

/* x|y: one more node, whose closure is both starts. */
static expr_cost alternative_cost(expr_cost x, expr_cost y)
{
    expr_cost r;
    r.nullable = x.nullable || y.nullable;
    r.nodes = capped(x.nodes + y.nodes + 1);
    r.head = capped(x.head + y.head + 1);
    r.closure = capped(x.closure + y.closure + r.head);
    r.tail = capped(x.tail + y.tail + (r.nullable ? 1 : 0));
    r.width_inner = max2(x.width_inner, y.width_inner);
    r.width_outer = max2(x.width_outer, y.width_outer);
    return r;
}

/* x*: one more node; x's end loops back to its start. */
static expr_cost star_cost(expr_cost x)
{
    expr_cost r;
    r.nullable = true;
    r.nodes = capped(x.nodes + 1);
    r.head = capped(x.head + 1);
    r.tail = capped(x.tail + 1);
    r.closure = capped(x.closure + r.head + x.tail * x.head);
    r.width_inner = x.width_inner;
    r.width_outer = capped(x.width_outer + r.head);
    return r;
}

/* x{lo,hi} the way glibc expands it: lo copies, then either x* or the
 * nested optional copies ((x?x)?x)? up to hi. lo and hi are at most 255
 * (PostgreSQL's limit), so the loops are short. */
static expr_cost repeat_cost(expr_cost x, int lo, int hi)
{
    expr_cost r = empty_cost();
    if (hi == 0) /* the caller writes "(|)" instead: one empty alternation */
        return alternative_cost(r, r);
    for (int i = 0; i < lo; i++)
        r = concat_cost(r, x);
    if (hi < 0) {
        r = concat_cost(r, star_cost(x));
    } else if (hi > lo) {
        expr_cost optional = alternative_cost(x, empty_cost());
        for (int i = lo + 2; i <= hi; i++)
            optional = alternative_cost(concat_cost(optional, x), empty_cost());
        r = concat_cost(r, optional);
    }
    return r;
}

static cost_frame new_frame(void)
{
    return (cost_frame){empty_cost(), false, empty_cost(), empty_cost()};
}

regex_cost *regex_cost_new(void)
{
    regex_cost *rc = xcalloc(1, sizeof *rc);
    rc->cap = 8;
    rc->frames = xcalloc(rc->cap, sizeof *rc->frames);
    rc->frames[0] = new_frame();
    return rc;
}

void regex_cost_free(regex_cost *rc)
{
    if (!rc)
        return;
    free(rc->frames);
    free(rc);
}

static cost_frame *top(regex_cost *rc)
{
    return &rc->frames[rc->depth];
}

static void push_element(regex_cost *rc, expr_cost element)
{
    cost_frame *f = top(rc);
    f->prefix = concat_cost(f->prefix, f->last);
    f->last = element;
}

void regex_cost_atom(regex_cost *rc, double nodes)
{
    push_element(rc, (expr_cost){nodes, nodes, 1, 0, 0, 0, false});
}

void regex_cost_anchor(regex_cost *rc)
{
    push_element(rc, (expr_cost){1, 1, 1, 1, 0, 0, true});
}

void regex_cost_open_group(regex_cost *rc)
{
    if (rc->depth + 1 == rc->cap) {
        rc->cap *= 2;
        rc->frames = xrealloc(rc->frames, rc->cap * sizeof *rc->frames);
    }
    rc->frames[++rc->depth] = new_frame();
}

/* Everything in the frame: its alternatives, the current one included. */
static expr_cost frame_cost(const cost_frame *f)
{
    expr_cost branch = concat_cost(f->prefix, f->last);
    return f->has_alternatives ? alternative_cost(f->alternatives, branch)
                               : branch;
}

void regex_cost_close_group(regex_cost *rc)
{
    if (rc->depth == 0)
        return;
    /* glibc drops the group node itself when compiling with REG_NOSUB */
    expr_cost group = frame_cost(top(rc));
    rc->depth--;
    push_element(rc, group);
}

void regex_cost_alternative(regex_cost *rc)
{
    cost_frame *f = top(rc);
    f->alternatives = frame_cost(f);
    f->has_alternatives = true;
    f->prefix = empty_cost();
    f->last = empty_cost();
}

void regex_cost_repeat(regex_cost *rc, int lo, int hi)
{
    cost_frame *f = top(rc);
    f->last = repeat_cost(f->last, lo, hi);
}

void regex_cost_finish(regex_cost *rc, double *size, double *width)
{
    while (rc->depth > 0)
        regex_cost_close_group(rc);
    expr_cost whole = frame_cost(top(rc));
    *size = capped(NODE_WEIGHT * whole.nodes + whole.closure);
    /* after the last character comes glibc's end node */
    *width = max2(max2(whole.head, whole.width_inner), whole.width_outer + 1);
}
