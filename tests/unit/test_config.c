/* Config module: YAML tree with positions, ${VAR} expansion, typed reads,
 * durations, unknown keys, and the host configuration with its defaults
 * and every error path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <notifd/plugin.h>
#include "config/cfg_internal.h"
#include "config/config.h"
#include "nd_test.h"

#define FIXTURES ND_SOURCE_ROOT "/tests/unit/fixtures/config"

/* All errors joined, for assertions and failure messages. */
static const char *text_of(const nd_errors *e) {
  static char buf[8192];
  nd_errors_format(e, buf, sizeof buf);
  return buf;
}

static nd_cfg_tree parse_ok(const char *yaml) {
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  int rc = nd_cfg_parse(yaml, strlen(yaml), "t.yaml", &t, &e);
  ck_assert_msg(rc == 0 && e.n == 0, "parse failed: %s", text_of(&e));
  nd_errors_free(&e);
  return t;
}

/* Parsing fails and the joined errors contain `want`. */
static void parse_fails(const char *yaml, const char *want) {
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  int rc = nd_cfg_parse(yaml, strlen(yaml), "t.yaml", &t, &e);
  ck_assert_msg(rc == -1, "parse of <%s> should fail", yaml);
  ck_assert_ptr_null(t.root);
  ck_assert_msg(e.n > 0, "no error for <%s>", yaml);
  ck_assert_msg(strstr(text_of(&e), want), "want '%s' in: %s", want, text_of(&e));
  nd_cfg_tree_free(&t);
  nd_errors_free(&e);
}

/* Parse + load; returns nd_config_load's result, errors in *e. */
static int load(const char *yaml, nd_config *c, nd_errors *e) {
  nd_cfg_tree t;
  nd_errors_init(e);
  int rc = nd_cfg_parse(yaml, strlen(yaml), "t.yaml", &t, e);
  ck_assert_msg(rc == 0, "parse failed: %s", text_of(e));
  return nd_config_load(&t, c, e);
}

static void load_ok(const char *yaml, nd_config *c) {
  nd_errors e;
  int rc = load(yaml, c, &e);
  ck_assert_msg(rc == 0 && e.n == 0, "load failed: %s", text_of(&e));
  nd_errors_free(&e);
}

/* Loading fails and the errors contain `want`. */
static void load_fails(const char *yaml, const char *want) {
  nd_config c;
  nd_errors e;
  int rc = load(yaml, &c, &e);
  ck_assert_msg(rc == -1, "load of <%s> should fail", yaml);
  ck_assert_msg(strstr(text_of(&e), want), "want '%s' in: %s", want, text_of(&e));
  nd_config_free(&c);
  nd_errors_free(&e);
}

/* The single scalar under `key` of a one-line document. */
static nd_cfg_node *scalar(nd_cfg_tree *t, const char *key) {
  nd_cfg_node *n = nd_cfg_get(t->root, key);
  ck_assert_ptr_nonnull(n);
  return n;
}

/* ---- errors ---------------------------------------------------------- */

START_TEST(errors_format) {
  nd_errors e;
  nd_errors_init(&e);
  nd_errors_add(&e, "f.yaml", 3, 7, "bad %s", "thing");
  nd_errors_add(&e, "f.yaml", 4, 0, "line only");
  nd_errors_add(&e, "f.yaml", 0, 0, "no position");
  nd_errors_add(&e, NULL, 9, 9, "no file %d", 42);
  ck_assert_uint_eq(e.n, 4);
  ck_assert_str_eq(text_of(&e), "f.yaml:3:7: bad thing\nf.yaml:4: line only\n"
                                "f.yaml: no position\nno file 42");
  char small[10];
  memset(small, 'x', sizeof small);
  nd_errors_format(&e, small, sizeof small);
  ck_assert_str_eq(small, "f.yaml:3:");
  nd_errors_format(&e, small, 1);
  ck_assert_str_eq(small, "");
  nd_errors_format(&e, NULL, 0); /* tolerated */
  for (int i = 0; i < 100; i++) nd_errors_add(&e, "f", i + 1, 1, "e%d", i);
  ck_assert_uint_eq(e.n, 104);
  nd_errors_free(&e);
  ck_assert_uint_eq(e.n, 0);
  ck_assert_ptr_null(e.msgs);
  nd_errors empty;
  nd_errors_init(&empty);
  ck_assert_str_eq(text_of(&empty), "");
}
END_TEST

/* ---- tree ------------------------------------------------------------ */

START_TEST(tree_positions) {
  nd_cfg_tree t = parse_ok("# comment\n"
                           "listen:\n"
                           "  address: \"0.0.0.0\"\n"
                           "  port: 8080\n"
                           "list: [a, 'b', {c: d}]\n"
                           "block:\n"
                           "  - x\n"
                           "  - y\n");
  ck_assert_ptr_nonnull(t.root);
  ck_assert_int_eq(t.root->kind, ND_CFG_MAP);
  ck_assert_str_eq(t.file, "t.yaml");
  ck_assert_uint_eq(t.root->n, 3);
  nd_cfg_node *listen = nd_cfg_get(t.root, "listen");
  ck_assert_int_eq(listen->kind, ND_CFG_MAP);
  ck_assert_int_eq(listen->key_line, 2);
  ck_assert_int_eq(listen->key_col, 1);
  nd_cfg_node *addr = nd_cfg_get(listen, "address");
  ck_assert_str_eq(addr->str, "0.0.0.0");
  ck_assert_int_eq(addr->quoted, 1);
  ck_assert_int_eq(addr->line, 3);
  ck_assert_int_eq(addr->col, 12);
  ck_assert_int_eq(addr->key_line, 3);
  ck_assert_int_eq(addr->key_col, 3);
  ck_assert_ptr_eq(addr->parent, listen);
  ck_assert_str_eq(addr->file, "t.yaml");
  nd_cfg_node *port = nd_cfg_get(listen, "port");
  ck_assert_str_eq(port->str, "8080");
  ck_assert_int_eq(port->quoted, 0);
  ck_assert_int_eq(port->line, 4);
  ck_assert_int_eq(port->col, 9);
  nd_cfg_node *list = nd_cfg_get(t.root, "list");
  ck_assert_int_eq(list->kind, ND_CFG_SEQ);
  ck_assert_uint_eq(list->n, 3);
  ck_assert_str_eq(list->items[1]->str, "b");
  ck_assert_int_eq(list->items[1]->quoted, 1);
  ck_assert_ptr_null(list->items[1]->key);
  ck_assert_int_eq(list->items[1]->col, 11);
  ck_assert_int_eq(list->items[2]->kind, ND_CFG_MAP);
  ck_assert_str_eq(nd_cfg_get(list->items[2], "c")->str, "d");
  nd_cfg_node *block = nd_cfg_get(t.root, "block");
  ck_assert_uint_eq(block->n, 2);
  ck_assert_int_eq(block->items[1]->line, 8);
  ck_assert_int_eq(block->items[1]->col, 5);
  nd_cfg_tree_free(&t);
  ck_assert_ptr_null(t.root);
  ck_assert_ptr_null(t.file);
  nd_cfg_tree_free(&t); /* twice is harmless */
}
END_TEST

START_TEST(tree_nulls) {
  nd_cfg_tree t = parse_ok("a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: ''\ng: \"null\"\nh: nul\n"
                           "i: |\n  text\nj: >\n  folded\n");
  const char *nulls[] = {"a", "b", "c", "d", "e"};
  for (size_t i = 0; i < 5; i++) ck_assert_msg(scalar(&t, nulls[i])->is_null, "%s", nulls[i]);
  const char *not_nulls[] = {"f", "g", "h", "i", "j"};
  for (size_t i = 0; i < 5; i++)
    ck_assert_msg(!scalar(&t, not_nulls[i])->is_null, "%s", not_nulls[i]);
  ck_assert_str_eq(scalar(&t, "i")->str, "text\n");
  ck_assert_int_eq(scalar(&t, "i")->quoted, 1);
  ck_assert_int_eq(scalar(&t, "j")->quoted, 1);
  nd_cfg_tree_free(&t);
}
END_TEST

START_TEST(tree_empty_documents) {
  const char *empties[] = {"", "# only a comment\n", "---\n", "~\n", "---\n...\n", "\n\n"};
  for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
    nd_cfg_tree t = parse_ok(empties[i]);
    ck_assert_msg(t.root == NULL, "<%s>", empties[i]);
    nd_cfg_tree_free(&t);
  }
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  ck_assert_int_eq(nd_cfg_parse(NULL, 0, "n.yaml", &t, &e), 0);
  ck_assert_ptr_null(t.root);
  nd_cfg_tree_free(&t);
  nd_errors_free(&e);
}
END_TEST

START_TEST(tree_top_level_must_be_map) {
  parse_fails("- a\n- b\n", "t.yaml:1:1: the top level must be a map");
  parse_fails("just text\n", "t.yaml:1:1: the top level must be a map");
}
END_TEST

START_TEST(tree_syntax_errors) {
  /* Unclosed flow list: libyaml's problem text at its position. */
  parse_fails("a: 1\nb: [1, 2\nc: 3\n", "t.yaml:3:2: did not find expected ',' or ']'");
  /* Bad indentation. */
  parse_fails("a:\n  b: 1\n c: 2\n", "t.yaml:3:2: did not find expected key");
  /* Tab indentation. */
  parse_fails("a:\n\tb: 1\n", "t.yaml:2:1: found character that cannot start any token");
  /* Unterminated quote. */
  parse_fails("a: \"open\n", "t.yaml:2:1: found unexpected end of stream");
  /* Invalid UTF-8 is a reader error: position counted from the offset. */
  parse_fails("a: 1\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet");
  /* The context of the problem is appended. */
  parse_fails("a: [1, 2\n", "(while parsing a flow sequence)");
}
END_TEST

START_TEST(tree_anchors_tags_refused) {
  parse_fails("a: &x 1\nb: 2\n", "t.yaml:1:4: anchors (&x) are not supported");
  parse_fails("a: &x {k: 1}\n", "t.yaml:1:4: anchors (&x) are not supported");
  parse_fails("a: 1\nb: *x\n", "t.yaml:2:4: aliases (*x) are not supported");
  parse_fails("a: 1\n*x : 2\n", "t.yaml:2:1: aliases (*x) are not supported");
  parse_fails("base: &b {x: 1}\nother:\n  <<: *b\n", "t.yaml:3:7: aliases (*b) are not supported");
  parse_fails("a: !!str 1\n",
              "t.yaml:1:4: explicit tags (tag:yaml.org,2002:str) are not supported");
  parse_fails("a: !custom [1]\n", "t.yaml:1:4: explicit tags (!custom) are not supported");
  /* Every problem is reported, not only the first. */
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  const char *y = "a: &x 1\nb: *x\nc: !t 3\n";
  ck_assert_int_eq(nd_cfg_parse(y, strlen(y), "t.yaml", &t, &e), -1);
  ck_assert_uint_eq(e.n, 3);
  nd_cfg_tree_free(&t);
  nd_errors_free(&e);
}
END_TEST

START_TEST(tree_duplicate_and_bad_keys) {
  parse_fails("a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a' (first at line 1, column 1)");
  parse_fails("x:\n  y: 1\n  y: {z: 2}\n",
              "t.yaml:3:3: duplicate key 'x.y' (first at line 2, column 3)");
  parse_fails("l:\n  - {k: 1, k: 2}\n", "t.yaml:2:12: duplicate key 'l[0].k'");
  parse_fails("? [a, b]\n: 1\n", "t.yaml:1:3: map keys must be scalars");
  parse_fails("{a: 1}: 2\n", "t.yaml:1:1: map keys must be scalars");
  parse_fails("'': 1\n", "t.yaml:1:1: empty map key");
  parse_fails("a: 1\n---\nb: 2\n", "t.yaml:2:1: only one YAML document is allowed");
  parse_fails("a: \"x\\0y\"\n", "t.yaml:1:4: a value contains a NUL character");
  /* Quoted and plain spellings of the same key are the same key. */
  parse_fails("a: 1\n'a': 2\n", "duplicate key 'a'");
}
END_TEST

START_TEST(tree_depth_limit) {
  char y[400];
  size_t o = 0;
  o += (size_t)snprintf(y + o, sizeof y - o, "a: ");
  for (int i = 0; i < 100; i++) y[o++] = '[';
  for (int i = 0; i < 100; i++) y[o++] = ']';
  y[o++] = '\n';
  y[o] = '\0';
  parse_fails(y, "nesting deeper than 64 levels");
  /* 60 levels are fine. */
  o = (size_t)snprintf(y, sizeof y, "a: ");
  for (int i = 0; i < 60; i++) y[o++] = '[';
  for (int i = 0; i < 60; i++) y[o++] = ']';
  y[o] = '\0';
  nd_cfg_tree t = parse_ok(y);
  nd_cfg_tree_free(&t);
}
END_TEST

START_TEST(tree_parse_file) {
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  ck_assert_int_eq(nd_cfg_parse_file("/nonexistent/x.yaml", &t, &e), -1);
  ck_assert_ptr_null(t.root);
  ck_assert_msg(strstr(text_of(&e), "/nonexistent/x.yaml: cannot open: No such file"), "%s",
                text_of(&e));
  nd_errors_free(&e);
  nd_cfg_tree_free(&t);
  setenv("NDT_SECRET", "x", 1);
  ck_assert_msg(nd_cfg_parse_file(FIXTURES "/full.yaml", &t, &e) == 0, "%s", text_of(&e));
  ck_assert_str_eq(t.file, FIXTURES "/full.yaml");
  ck_assert_str_eq(t.root->file, FIXTURES "/full.yaml");
  nd_cfg_tree_free(&t);
  nd_errors_free(&e);
}
END_TEST

/* ---- lookups --------------------------------------------------------- */

START_TEST(lookup_marks_used) {
  nd_cfg_tree t = parse_ok("a:\n  b:\n    c: 1\n  d: 2\ne: [1]\n");
  nd_cfg_node *a = t.root->items[0], *b = a->items[0], *c = b->items[0], *d = a->items[1];
  ck_assert(!a->used && !b->used && !c->used && !d->used);
  nd_cfg_node *n = nd_cfg_path(t.root, "a.b.c");
  ck_assert_ptr_eq(n, c);
  ck_assert(a->used && b->used && c->used && !d->used);
  ck_assert_ptr_null(nd_cfg_path(t.root, "a.x.c"));
  ck_assert_ptr_null(nd_cfg_path(t.root, "a..b"));
  ck_assert_ptr_null(nd_cfg_path(t.root, ""));
  ck_assert_ptr_null(nd_cfg_path(t.root, "a.b.c.d")); /* through a scalar */
  /* A decimal segment indexes a list. */
  nd_cfg_node *e0 = t.root->items[1]->items[0];
  ck_assert(!e0->used);
  ck_assert_ptr_eq(nd_cfg_path(t.root, "e.0"), e0);
  ck_assert(e0->used);
  ck_assert_ptr_null(nd_cfg_path(t.root, "e.1"));
  ck_assert_ptr_null(nd_cfg_path(t.root, "e.x"));
  ck_assert_ptr_null(nd_cfg_path(t.root, "e.-1"));
  ck_assert_ptr_null(nd_cfg_path(t.root, "a.0"));     /* maps are not lists */
  ck_assert_ptr_null(nd_cfg_path(NULL, "a"));
  ck_assert_ptr_null(nd_cfg_get(NULL, "a"));
  ck_assert_ptr_null(nd_cfg_get(c, "a"));
  ck_assert_ptr_null(nd_cfg_get(t.root, "ab"));
  ck_assert_ptr_eq(nd_cfg_get(a, "d"), d);
  ck_assert(d->used);
  nd_cfg_tree_free(&t);
}
END_TEST

/* did-you-mean comes from the keys asked of the same map, present or not,
 * within a few edits (transpositions count once); after a reader stopped
 * early only those misspellings stay reported. */
START_TEST(suggestions_and_forgiving) {
  nd_cfg_tree t = parse_ok("cfg:\n"
                           "  timout: 5s\n"    /* 1 edit from timeout (asked, absent) */
                           "  Reytr: 3\n"      /* case and a swap: retry */
                           "  wholly_else: 1\n" /* nothing close */
                           "  later: 2\n");    /* a key the reader never reached */
  nd_cfg_node *cfg = nd_cfg_get(t.root, "cfg");
  ck_assert_ptr_null(nd_cfg_get(cfg, "timeout"));
  ck_assert_ptr_null(nd_cfg_get(cfg, "retry"));
  ck_assert_ptr_null(nd_cfg_get(cfg, "size"));
  nd_errors e;
  nd_errors_init(&e);
  nd_cfg_report_unused(t.root, "", &e);
  ck_assert_str_eq(text_of(&e), "t.yaml:2:3: unknown key 'cfg.timout' (did you mean 'timeout'?)\n"
                                "t.yaml:3:3: unknown key 'cfg.Reytr' (did you mean 'retry'?)\n"
                                "t.yaml:4:3: unknown key 'cfg.wholly_else'\n"
                                "t.yaml:5:3: unknown key 'cfg.later'");
  nd_errors_free(&e);
  nd_cfg_forgive_unread(cfg);
  nd_errors_init(&e);
  nd_cfg_report_unused(t.root, "", &e);
  ck_assert_str_eq(text_of(&e), "t.yaml:2:3: unknown key 'cfg.timout' (did you mean 'timeout'?)\n"
                                "t.yaml:3:3: unknown key 'cfg.Reytr' (did you mean 'retry'?)");
  nd_errors_free(&e);
  nd_cfg_tree_free(&t);
}
END_TEST

START_TEST(report_unused_keys) {
  nd_cfg_tree t = parse_ok("listen: {prot: 80, port: 1}\n"
                           "used: {inner: 1}\n"
                           "unused_map: {x: 1}\n"
                           "plugins:\n"
                           "  - name: a\n"
                           "  - name: b\n"
                           "    config:\n"
                           "      foo: 1\n"
                           "      bar: 2\n");
  nd_cfg_path(t.root, "listen.port");
  nd_cfg_path(t.root, "used.inner");
  nd_cfg_node *plugins = nd_cfg_get(t.root, "plugins");
  nd_cfg_get(plugins->items[0], "name");
  nd_cfg_get(plugins->items[1], "name");
  nd_cfg_node *conf = nd_cfg_get(plugins->items[1], "config");
  nd_cfg_get(conf, "bar");
  nd_errors e;
  nd_errors_init(&e);
  nd_cfg_report_unused(t.root, "", &e);
  ck_assert_str_eq(text_of(&e), "t.yaml:1:10: unknown key 'listen.prot' (did you mean 'port'?)\n"
                                "t.yaml:3:1: unknown key 'unused_map'\n"
                                "t.yaml:8:7: unknown key 'plugins[1].config.foo'");
  nd_errors_free(&e);
  /* A prefix names a subtree reported on its own. */
  nd_errors_init(&e);
  nd_cfg_report_unused(conf, "plugins[1].config", &e);
  ck_assert_str_eq(text_of(&e), "t.yaml:8:7: unknown key 'plugins[1].config.foo'");
  nd_errors_free(&e);
  nd_errors_init(&e);
  nd_cfg_report_unused(NULL, "", &e);
  ck_assert_uint_eq(e.n, 0);
  nd_errors_free(&e);
  nd_cfg_tree_free(&t);
}
END_TEST

/* ---- ${VAR} expansion ------------------------------------------------ */

START_TEST(expand_variables) {
  setenv("NDT_A", "hello", 1);
  setenv("NDT_EMPTY", "", 1);
  unsetenv("NDT_UNSET");
  nd_cfg_tree t = parse_ok("a: ${NDT_A}\n"
                           "b: x${NDT_A}-${NDT_A}y\n"
                           "c: ${NDT_UNSET:-dflt}\n"
                           "d: ${NDT_EMPTY:-dflt}\n"
                           "e: ${NDT_EMPTY-dflt}\n"
                           "f: ${NDT_UNSET-dflt}\n"
                           "g: price $$5 and $$${NDT_A}\n"
                           "h: $HOME and a lone $ stay\n"
                           "i: ${NDT_UNSET:-}\n"
                           "j: \"${NDT_UNSET:-}\"\n"
                           "k: '${NDT_A}'\n"
                           "l: [\"${NDT_A}\", \"${NDT_UNSET:-p q}\"]\n"
                           "bl:\n  - ${NDT_A}/x\n"
                           "${NDT_A}: key text is not expanded\n"
                           "m: ${NDT_UNSET:-a b:c/d}\n"
                           "n: ${NDT_A:-unused}\n");
  ck_assert_str_eq(scalar(&t, "a")->str, "hello");
  ck_assert_str_eq(scalar(&t, "b")->str, "xhello-helloy");
  ck_assert_str_eq(scalar(&t, "c")->str, "dflt");
  ck_assert_str_eq(scalar(&t, "d")->str, "dflt");
  ck_assert_str_eq(scalar(&t, "e")->str, "");
  ck_assert_str_eq(scalar(&t, "f")->str, "dflt");
  ck_assert_str_eq(scalar(&t, "g")->str, "price $5 and $hello");
  ck_assert_str_eq(scalar(&t, "h")->str, "$HOME and a lone $ stay");
  ck_assert_str_eq(scalar(&t, "i")->str, "");
  ck_assert(scalar(&t, "i")->is_null); /* plain and empty: not set */
  ck_assert_str_eq(scalar(&t, "j")->str, "");
  ck_assert(!scalar(&t, "j")->is_null);
  ck_assert_str_eq(scalar(&t, "k")->str, "hello");
  nd_cfg_node *l = scalar(&t, "l");
  ck_assert_str_eq(l->items[0]->str, "hello");
  ck_assert_str_eq(l->items[1]->str, "p q");
  ck_assert_str_eq(scalar(&t, "bl")->items[0]->str, "hello/x");
  ck_assert_ptr_nonnull(nd_cfg_get(t.root, "${NDT_A}"));
  ck_assert_str_eq(scalar(&t, "m")->str, "a b:c/d");
  ck_assert_str_eq(scalar(&t, "n")->str, "hello");
  nd_cfg_tree_free(&t);
}
END_TEST

START_TEST(expand_errors) {
  unsetenv("NDT_UNSET");
  parse_fails("a: 1\nb:\n  c: ${NDT_UNSET}\n",
              "t.yaml:3:6: key 'b.c': environment variable NDT_UNSET is not set");
  parse_fails("l: [1, 'x${NDT_UNSET}']\n",
              "t.yaml:1:8: key 'l[1]': environment variable NDT_UNSET");
  parse_fails("a: ${NDT_A\n", "t.yaml:1:4: key 'a': unterminated '${NDT_A'");
  parse_fails("a: ${NDT_A:-x\n", "unterminated '${NDT_A'");
  parse_fails("a: ${}\n", "invalid variable reference '${}'");
  parse_fails("a: ${1X}\n", "invalid variable reference '${1X}'");
  parse_fails("a: ${NDT_A:?msg}\n", "unsupported variable reference '${NDT_A:?msg}'");
  parse_fails("a: ${NDT_A:-${NDT_B}}\n", "nested '${' in the default of '${NDT_A'");
  /* Every unset variable is reported. */
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  const char *y = "a: ${NDT_U1}\nb: ${NDT_U2}\n";
  unsetenv("NDT_U1");
  unsetenv("NDT_U2");
  ck_assert_int_eq(nd_cfg_parse(y, strlen(y), "t.yaml", &t, &e), -1);
  ck_assert_uint_eq(e.n, 2);
  ck_assert_msg(strstr(text_of(&e), "NDT_U2"), "%s", text_of(&e));
  nd_cfg_tree_free(&t);
  nd_errors_free(&e);
}
END_TEST

/* ---- scalars --------------------------------------------------------- */

static const struct {
  const char *in;
  int64_t ms;
} good_durations[] = {
    /* Go's time.ParseDuration examples and tests, in milliseconds. */
    {"0", 0},
    {"5s", 5000},
    {"30s", 30000},
    {"1478s", 1478000},
    {"-5s", -5000},
    {"+5s", 5000},
    {"-0", 0},
    {"+0", 0},
    {"5.0s", 5000},
    {"5.6s", 5600},
    {"5.s", 5000},
    {".5s", 500},
    {"1.0s", 1000},
    {"1.00s", 1000},
    {"1.004s", 1004},
    {"1.0040s", 1004},
    {"100.00100s", 100001},
    {"10ns", 0},
    {"11us", 0},
    {"12\xc2\xb5s", 0},
    {"12\xce\xbcs", 0},
    {"13ms", 13},
    {"14s", 14000},
    {"15m", 900000},
    {"16h", 57600000},
    {"3h30m", 12600000},
    {"10.5s4m", 250500},
    {"-2m3.4s", -123400},
    {"1h2m3s4ms5us6ns", 3723004},
    {"39h9m14.425s", 140954425},
    {"52763797000ns", 52763},
    {"0.3333333333333333333h", 1200000},
    {"9007199254740993ns", 9007199254},
    {"9223372036854775807ns", 9223372036854},
    {"9223372036854775.807us", 9223372036854},
    {"9223372036s854ms775us807ns", 9223372036854},
    {"-9223372036854775808ns", -9223372036854},
    {"0.100000000000000000000h", 360000},
    {"0.830103483285477580700h", 2988372},
    {"300ms", 300},
    {"1.5s", 1500},
    {"1h30m", 5400000},
    {"2h45m10.5s", 9910500},
    {"1500us", 1},
    {"1999999ns", 1},
    {"-1999999ns", -1},
    /* A bare integer is milliseconds. */
    {"250", 250},
    {"-5", -5},
    {"+7", 7},
    {"00012", 12},
};

static const char *const bad_durations[] = {
    "", "-", "+", "s", ".", "-.", ".s", "+.s", "1d", "1.5", "1s5", "5 s", " 5s", "5s ",
    "\x85\x85", "\xff" "ff", "hello \xff" "ff world", "9223372036854775810ns",
    "9223372036854775808ns", "-9223372036854775809ns", "3000000h", "1e3s", "0x10", "1..5s",
    "99999999999999999999", "5S", "1H", "ms",
};

START_TEST(durations_table) {
  for (size_t i = 0; i < sizeof good_durations / sizeof *good_durations; i++) {
    int64_t v = 12345;
    ck_assert_msg(nd_parse_duration_ms(good_durations[i].in, &v) == 0, "'%s' rejected",
                  good_durations[i].in);
    ck_assert_msg(v == good_durations[i].ms, "'%s' -> %lld, want %lld", good_durations[i].in,
                  (long long)v, (long long)good_durations[i].ms);
  }
  for (size_t i = 0; i < sizeof bad_durations / sizeof *bad_durations; i++) {
    int64_t v = 12345;
    ck_assert_msg(nd_parse_duration_ms(bad_durations[i], &v) == -1, "'%s' accepted (%lld)",
                  bad_durations[i], (long long)v);
    ck_assert_int_eq(v, 12345);
  }
  int64_t v;
  ck_assert_int_eq(nd_parse_duration_ms(NULL, &v), -1);
}
END_TEST

START_TEST(bools) {
  const char *t[] = {"1",   "t",   "T",   "TRUE", "true", "True",
                     "yes", "Yes", "YES", "on",   "On",   "ON"};
  const char *f[] = {"0",  "f",  "F",  "FALSE", "false", "False",
                     "no", "No", "NO", "off",   "Off",   "OFF"};
  for (size_t i = 0; i < 12; i++) {
    int v = -1;
    ck_assert_msg(nd_parse_bool(t[i], &v) == 0 && v == 1, "%s", t[i]);
    ck_assert_msg(nd_parse_bool(f[i], &v) == 0 && v == 0, "%s", f[i]);
  }
  const char *bad[] = {"", "2", "yess", "tRUE", "y", "n", "enable", " true", NULL};
  for (size_t i = 0; bad[i]; i++) {
    int v = 7;
    ck_assert_msg(nd_parse_bool(bad[i], &v) == -1 && v == 7, "'%s'", bad[i]);
  }
  ck_assert_int_eq(nd_parse_bool(NULL, &(int){0}), -1);
}
END_TEST

START_TEST(typed_reads) {
  nd_cfg_tree t = parse_ok("i: 80\nneg: -1\nplus: +7\nhex: 0x1F\nnhex: -0x10\nlead: 010\n"
                           "max: 9223372036854775807\nmin: -9223372036854775808\n"
                           "d1: 2\nd2: 2.5\nd3: -1e3\nd4: .5\n"
                           "b: yes\ndur: 1m30s\nqdur: \"45s\"\ns: text\nq: 'quoted'\nnum: 42\n");
  nd_errors e;
  nd_errors_init(&e);
  int64_t i;
  double d;
  int b;
  const char *s;
  struct {
    const char *key;
    int64_t want;
  } ints[] = {{"i", 80},   {"neg", -1}, {"plus", 7},          {"hex", 31},
              {"nhex", -16}, {"lead", 10}, {"max", INT64_MAX}, {"min", INT64_MIN}};
  for (size_t k = 0; k < sizeof ints / sizeof *ints; k++) {
    ck_assert_int_eq(nd_cfg_as_int(scalar(&t, ints[k].key), &e, &i), 0);
    ck_assert_msg(i == ints[k].want, "%s", ints[k].key);
  }
  ck_assert_int_eq(nd_cfg_as_double(scalar(&t, "d1"), &e, &d), 0);
  ck_assert(d == 2.0);
  ck_assert_int_eq(nd_cfg_as_double(scalar(&t, "d2"), &e, &d), 0);
  ck_assert(d == 2.5);
  ck_assert_int_eq(nd_cfg_as_double(scalar(&t, "d3"), &e, &d), 0);
  ck_assert(d == -1000.0);
  ck_assert_int_eq(nd_cfg_as_double(scalar(&t, "d4"), &e, &d), 0);
  ck_assert(d == 0.5);
  ck_assert_int_eq(nd_cfg_as_bool(scalar(&t, "b"), &e, &b), 0);
  ck_assert_int_eq(b, 1);
  ck_assert_int_eq(nd_cfg_as_duration_ms(scalar(&t, "dur"), &e, &i), 0);
  ck_assert_int_eq(i, 90000);
  ck_assert_int_eq(nd_cfg_as_duration_ms(scalar(&t, "qdur"), &e, &i), 0);
  ck_assert_int_eq(i, 45000);
  ck_assert_int_eq(nd_cfg_as_string(scalar(&t, "s"), &e, &s), 0);
  ck_assert_str_eq(s, "text");
  ck_assert_int_eq(nd_cfg_as_string(scalar(&t, "q"), &e, &s), 0);
  ck_assert_str_eq(s, "quoted");
  ck_assert_int_eq(nd_cfg_as_string(scalar(&t, "num"), &e, &s), 0); /* numbers read as text */
  ck_assert_str_eq(s, "42");
  ck_assert_uint_eq(e.n, 0);
  nd_errors_free(&e);
  nd_cfg_tree_free(&t);
}
END_TEST

/* One type error: the read fails, leaves *out alone, and says `want`. */
#define EXPECT_TYPE_ERROR(call, want)                                              \
  do {                                                                             \
    nd_errors e_;                                                                  \
    nd_errors_init(&e_);                                                           \
    ck_assert_int_eq(call(n, &e_, &out), -1);                                      \
    ck_assert_uint_eq(e_.n, 1);                                                    \
    ck_assert_msg(strcmp(text_of(&e_), want) == 0, "got: %s\nwant: %s", text_of(&e_), want); \
    nd_errors_free(&e_);                                                           \
  } while (0)

START_TEST(type_errors) {
  nd_cfg_tree t = parse_ok("a:\n  b: xyz\n  q: \"80\"\n  m: {x: 1}\n  l: [1]\n  n: ~\n"
                           "  big: 9223372036854775808\n  f: 1.5\n  inf: inf\n  nan: nan\n"
                           "  hx: 0x1p3\n  e: ''\n  long: "
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
  nd_cfg_node *a = nd_cfg_get(t.root, "a"), *n;
  {
    int64_t out = 99;
    n = nd_cfg_get(a, "b");
    EXPECT_TYPE_ERROR(nd_cfg_as_duration_ms, "t.yaml:2:6: key 'a.b': expected duration, got 'xyz'");
    EXPECT_TYPE_ERROR(nd_cfg_as_int, "t.yaml:2:6: key 'a.b': expected integer, got 'xyz'");
    n = nd_cfg_get(a, "q");
    EXPECT_TYPE_ERROR(nd_cfg_as_int,
                      "t.yaml:3:6: key 'a.q': expected integer, got '80' (a quoted string)");
    n = nd_cfg_get(a, "m");
    EXPECT_TYPE_ERROR(nd_cfg_as_int, "t.yaml:4:6: key 'a.m': expected integer, got a map");
    n = nd_cfg_get(a, "l");
    EXPECT_TYPE_ERROR(nd_cfg_as_duration_ms,
                      "t.yaml:5:6: key 'a.l': expected duration, got a list");
    n = nd_cfg_get(a, "n");
    EXPECT_TYPE_ERROR(nd_cfg_as_int, "t.yaml:6:6: key 'a.n': expected integer, got null");
    n = nd_cfg_get(a, "big");
    EXPECT_TYPE_ERROR(nd_cfg_as_int,
                      "t.yaml:7:8: key 'a.big': expected integer, got '9223372036854775808'");
    n = nd_cfg_get(a, "f");
    EXPECT_TYPE_ERROR(nd_cfg_as_int, "t.yaml:8:6: key 'a.f': expected integer, got '1.5'");
    n = nd_cfg_get(a, "e");
    EXPECT_TYPE_ERROR(nd_cfg_as_int,
                      "t.yaml:12:6: key 'a.e': expected integer, got '' (a quoted string)");
    n = nd_cfg_get(nd_cfg_get(a, "l"), "x");
    ck_assert_ptr_null(n);
    EXPECT_TYPE_ERROR(nd_cfg_as_int, "expected integer, got nothing");
    ck_assert_int_eq(out, 99);
  }
  {
    double out = 1.25;
    n = nd_cfg_get(a, "inf");
    EXPECT_TYPE_ERROR(nd_cfg_as_double, "t.yaml:9:8: key 'a.inf': expected number, got 'inf'");
    n = nd_cfg_get(a, "nan");
    EXPECT_TYPE_ERROR(nd_cfg_as_double, "t.yaml:10:8: key 'a.nan': expected number, got 'nan'");
    n = nd_cfg_get(a, "hx");
    EXPECT_TYPE_ERROR(nd_cfg_as_double, "t.yaml:11:7: key 'a.hx': expected number, got '0x1p3'");
    n = nd_cfg_get(a, "q");
    EXPECT_TYPE_ERROR(nd_cfg_as_double,
                      "t.yaml:3:6: key 'a.q': expected number, got '80' (a quoted string)");
    ck_assert(out == 1.25);
  }
  {
    int out = 5;
    n = nd_cfg_get(a, "b");
    EXPECT_TYPE_ERROR(nd_cfg_as_bool, "t.yaml:2:6: key 'a.b': expected boolean, got 'xyz'");
    n = nd_cfg_get(a, "long");
    EXPECT_TYPE_ERROR(nd_cfg_as_bool,
                      "t.yaml:13:9: key 'a.long': expected boolean, got '"
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    ck_assert_int_eq(out, 5);
  }
  {
    const char *out = "keep";
    n = nd_cfg_get(a, "m");
    EXPECT_TYPE_ERROR(nd_cfg_as_string, "t.yaml:4:6: key 'a.m': expected string, got a map");
    n = nd_cfg_get(a, "n");
    EXPECT_TYPE_ERROR(nd_cfg_as_string, "t.yaml:6:6: key 'a.n': expected string, got null");
    ck_assert_str_eq(out, "keep");
  }
  nd_cfg_tree_free(&t);
}
END_TEST

/* Nodes built by hand (as other modules' tests do) have no parent: the key
 * alone names them, and a node without a position or key still reports. */
START_TEST(type_errors_hand_built) {
  nd_cfg_node n = {.kind = ND_CFG_SCALAR, .file = "h.yaml", .line = 2, .col = 3,
                   .str = (char *)"zz", .key = (char *)"port"};
  nd_errors e;
  nd_errors_init(&e);
  int64_t v;
  ck_assert_int_eq(nd_cfg_as_int(&n, &e, &v), -1);
  n.key = NULL;
  n.file = NULL;
  ck_assert_int_eq(nd_cfg_as_int(&n, &e, &v), -1);
  ck_assert_str_eq(text_of(&e), "h.yaml:2:3: key 'port': expected integer, got 'zz'\n"
                                "expected integer, got 'zz'");
  nd_errors_free(&e);
}
END_TEST

/* ---- host configuration --------------------------------------------- */

START_TEST(load_defaults) {
  const char *docs[] = {"", "listen: ~\nhttp:\nwebsocket: {}\nplugins:\nbus: ~\n"};
  for (size_t k = 0; k < 2; k++) {
    nd_config c;
    load_ok(docs[k], &c);
    ck_assert_str_eq(c.listen_address, "0.0.0.0");
    ck_assert_int_eq(c.listen_port, 8080);
    ck_assert_str_eq(c.admin_address, "127.0.0.1");
    ck_assert_int_eq(c.admin_port, 9090);
    ck_assert_str_eq(c.data_dir, "./data");
    ck_assert_int_eq(c.log_level, NOTIFD_LOG_INFO);
    ck_assert_int_eq(c.log_json, 0);
    ck_assert_uint_eq(c.http_max_body, 1024 * 1024);
    ck_assert_uint_eq(c.http_max_header_bytes, 16 * 1024);
    ck_assert_uint_eq(c.http_max_connections, 100000);
    ck_assert_int_eq(c.http_keepalive_ms, 60000);
    ck_assert_int_eq(c.http_request_timeout_ms, 30000);
    ck_assert_ptr_null(c.static_dir);
    ck_assert_int_eq(c.http_openapi, 1);
    ck_assert_int_eq(c.shutdown_deadline_ms, 10000);
    ck_assert_ptr_null(c.jwt_secret);
    ck_assert_ptr_null(c.internal_token);
    ck_assert_int_eq(c.ws_ping_interval_ms, 25000);
    ck_assert_int_eq(c.ws_pong_timeout_ms, 10000);
    ck_assert_int_eq(c.ws_handshake_timeout_ms, 10000);
    ck_assert_uint_eq(c.ws_max_message, 64 * 1024);
    ck_assert_uint_eq(c.ws_max_queue_bytes, 1024 * 1024);
    ck_assert_uint_eq(c.ws_max_queue_frames, 1024);
    ck_assert_int_eq(c.ws_write_delay_ms, 0);
    ck_assert_uint_eq(c.ws_max_connections, 100000);
    ck_assert_uint_eq(c.ws_max_per_key, 64);
    ck_assert_ptr_null(c.ws_allowed_origins);
    ck_assert_int_eq(c.http_idle_timeout_ms, 10000);
    ck_assert_uint_eq(c.http_max_pending_body, 64 * 1024 * 1024);
    ck_assert_uint_eq(c.http_max_conns_per_ip, 256);
    ck_assert_ptr_null(c.http_trusted_proxies); /* = 127.0.0.1, ::1 */
    ck_assert_ptr_null(c.http_cors_origins);
    ck_assert(c.http_rate == 20);
    ck_assert_uint_eq(c.http_rate_burst, 100);
    ck_assert_uint_eq(c.workers, 4);
    ck_assert_ptr_null(c.plugin_dirs);
    ck_assert_ptr_null(c.kafka);
    ck_assert_ptr_null(c.redis);
    ck_assert_ptr_null(c.mongodb);
    ck_assert_ptr_null(c.bus_cfg);
    ck_assert_ptr_null(c.kv_cfg);
    ck_assert_int_eq(c.retry.max_attempts, 5);
    ck_assert_int_eq(c.retry.initial_interval_ms, 100);
    ck_assert_int_eq(c.retry.max_interval_ms, 30000);
    ck_assert(c.retry.multiplier == 2.0);
    ck_assert(c.retry.jitter == 0.2);
    ck_assert_uint_eq(c.nplugins, 0);
    ck_assert_ptr_null(c.plugins);
    nd_config_free(&c);
    ck_assert_ptr_null(c.listen_address);
  }
}
END_TEST

START_TEST(load_full_fixture) {
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  setenv("NDT_SECRET", "s3cret", 1);
  ck_assert_int_eq(nd_cfg_parse_file(FIXTURES "/full.yaml", &t, &e), 0);
  nd_config c;
  ck_assert_msg(nd_config_load(&t, &c, &e) == 0, "%s", text_of(&e));
  ck_assert_ptr_null(t.root); /* moved */
  ck_assert_str_eq(c.listen_address, "127.0.0.1");
  ck_assert_int_eq(c.listen_port, 0);
  ck_assert_str_eq(c.admin_address, "::1");
  ck_assert_int_eq(c.admin_port, -1);
  ck_assert_str_eq(c.data_dir, "/var/lib/notifd");
  ck_assert_int_eq(c.log_level, NOTIFD_LOG_DEBUG);
  ck_assert_int_eq(c.log_json, 1);
  ck_assert_uint_eq(c.http_max_body, 2 * 1024 * 1024);
  ck_assert_uint_eq(c.http_max_header_bytes, 8000);
  ck_assert_uint_eq(c.http_max_connections, 500);
  ck_assert_int_eq(c.http_keepalive_ms, 5000);
  ck_assert_int_eq(c.http_request_timeout_ms, 1500);
  ck_assert_str_eq(c.static_dir, "web");
  ck_assert_int_eq(c.shutdown_deadline_ms, 3000);
  ck_assert_str_eq(c.jwt_secret, "s3cret");
  ck_assert_str_eq(c.internal_token, "tok en");
  ck_assert_int_eq(c.ws_ping_interval_ms, 20000);
  ck_assert_int_eq(c.ws_pong_timeout_ms, 5000);
  ck_assert_int_eq(c.ws_handshake_timeout_ms, 2000);
  ck_assert_uint_eq(c.ws_max_message, 32 * 1024);
  ck_assert_uint_eq(c.ws_max_queue_bytes, 1000000);
  ck_assert_uint_eq(c.ws_max_queue_frames, 16);
  ck_assert_int_eq(c.ws_write_delay_ms, 2);
  ck_assert_uint_eq(c.ws_max_connections, 1000);
  ck_assert_uint_eq(c.ws_max_per_key, 8);
  ck_assert_ptr_nonnull(c.ws_allowed_origins);
  ck_assert_str_eq(c.ws_allowed_origins[0], "https://a.example");
  ck_assert_str_eq(c.ws_allowed_origins[1], "http://localhost:3000");
  ck_assert_ptr_null(c.ws_allowed_origins[2]);
  ck_assert_uint_eq(c.workers, 2);
  ck_assert_str_eq(c.plugin_dirs[0], "/opt/notifd/plugins");
  ck_assert_str_eq(c.plugin_dirs[1], "./build/plugins");
  ck_assert_ptr_null(c.plugin_dirs[2]);
  ck_assert_ptr_nonnull(c.kafka);
  ck_assert_ptr_nonnull(c.redis);
  ck_assert_ptr_null(c.mongodb); /* `mongodb: ~` = embedded */
  ck_assert_str_eq(c.kafka->items[0]->str, "127.0.0.1:9092"); /* not marked used */
  ck_assert_ptr_nonnull(c.bus_cfg);
  ck_assert_ptr_nonnull(c.kv_cfg);
  ck_assert_int_eq(c.retry.max_attempts, 3);
  ck_assert_int_eq(c.retry.initial_interval_ms, 1000);
  ck_assert_int_eq(c.retry.max_interval_ms, 60000);
  ck_assert(c.retry.multiplier == 1.5);
  ck_assert(c.retry.jitter == 0.0);
  ck_assert_uint_eq(c.nplugins, 3);
  ck_assert_str_eq(c.plugins[0].name, "chat_persistence");
  ck_assert_ptr_null(c.plugins[0].path);
  ck_assert_int_eq(c.plugins[0].builtin, 0);
  ck_assert_ptr_nonnull(c.plugins[0].config);
  ck_assert_str_eq(c.plugins[1].name, "email");
  ck_assert_str_eq(c.plugins[1].path, "/opt/email.so");
  ck_assert_ptr_null(c.plugins[1].config);
  ck_assert_str_eq(c.plugins[2].name, "test_echo2");
  ck_assert_int_eq(c.plugins[2].builtin, 1);
  ck_assert_int_eq(c.plugins[0].line, 55);
  ck_assert_int_eq(c.plugins[0].col, 5);
  /* What the host module did not read: the backend, bus and kv contents
   * and the plugins' own config, left for their modules. */
  nd_cfg_report_unused(c.tree.root, "", &e);
  const char *want = FIXTURES "/full.yaml:45:5: unknown key 'backends.kafka.brokers'\n"
                     FIXTURES "/full.yaml:47:5: unknown key 'backends.redis.address'\n"
                     FIXTURES "/full.yaml:50:3: unknown key 'bus.dead_letter_suffix'\n"
                     FIXTURES "/full.yaml:53:3: unknown key 'kv.key_prefix'\n"
                     FIXTURES "/full.yaml:57:7: unknown key 'plugins[0].config.page_size'";
  ck_assert_msg(strcmp(text_of(&e), want) == 0, "got:\n%s\nwant:\n%s", text_of(&e), want);
  nd_errors_free(&e);
  nd_config_free(&c);
}
END_TEST

START_TEST(load_misspelt_key) {
  nd_config c;
  load_ok("listen: {prot: 80}\n", &c);
  ck_assert_int_eq(c.listen_port, 8080);
  nd_errors e;
  nd_errors_init(&e);
  nd_cfg_report_unused(c.tree.root, "", &e);
  ck_assert_str_eq(text_of(&e), "t.yaml:1:10: unknown key 'listen.prot' (did you mean 'port'?)");
  nd_errors_free(&e);
  nd_config_free(&c);
  /* And at top level, from a fixture file. */
  nd_cfg_tree t;
  nd_errors_init(&e);
  ck_assert_int_eq(nd_cfg_parse_file(FIXTURES "/misspelt.yaml", &t, &e), 0);
  ck_assert_int_eq(nd_config_load(&t, &c, &e), 0);
  nd_cfg_report_unused(c.tree.root, "", &e);
  ck_assert_str_eq(text_of(&e),
                   FIXTURES "/misspelt.yaml:5:3: unknown key 'logging.levle' (did you mean 'level'?)\n"
                   FIXTURES "/misspelt.yaml:7:1: unknown key 'worker' (did you mean 'workers'?)");
  nd_errors_free(&e);
  nd_config_free(&c);
}
END_TEST

START_TEST(load_type_and_range_errors) {
  load_fails("listen: {port: 70000}\n",
             "t.yaml:1:16: key 'listen.port': must be between 0 and 65535, got 70000");
  load_fails("listen: {port: -1}\n", "key 'listen.port': must be between 0 and 65535, got -1");
  load_fails("listen: {port: http}\n",
             "t.yaml:1:16: key 'listen.port': expected integer, got 'http'");
  load_fails("listen: {port: \"80\"}\n", "expected integer, got '80' (a quoted string)");
  load_fails("admin: {port: -2}\n", "key 'admin.port': must be between -1 and 65535, got -2");
  load_fails("listen: {address: ''}\n", "t.yaml:1:19: key 'listen.address': must not be empty");
  load_fails("listen: {address: [a]}\n", "key 'listen.address': expected string, got a list");
  load_fails("listen: 8080\n", "t.yaml:1:9: key 'listen': expected a map, got a single value");
  load_fails("http: [1]\n", "key 'http': expected a map, got a list");
  load_fails("logging: {level: verbose}\n",
             "t.yaml:1:18: key 'logging.level': "
             "expected one of error|warn|info|debug, got 'verbose'");
  load_fails("logging: {format: xml}\n",
             "key 'logging.format': expected one of logfmt|json, got 'xml'");
  load_fails("http: {max_body: lots}\n", "key 'http.max_body': expected size, got 'lots'");
  load_fails("http: {max_body: 0}\n", "key 'http.max_body': must be between 1 and");
  load_fails("http: {max_header_bytes: 10}\n", "key 'http.max_header_bytes': must be between 1024");
  load_fails("http: {keepalive_timeout: 0s}\n",
             "key 'http.keepalive_timeout': must be between 1ms and 86400000ms, got 0ms");
  load_fails("http: {request_timeout: -5s}\n", "key 'http.request_timeout': must be between 1ms");
  load_fails("http: {request_timeout: soon}\n",
             "key 'http.request_timeout': expected duration, got 'soon'");
  load_fails("http: {max_connections: 0}\n", "key 'http.max_connections': must be between 1");
  load_fails("http: {static_dir: {a: 1}}\n", "key 'http.static_dir': expected string, got a map");
  load_fails("http: {openapi: maybe}\n", "key 'http.openapi': expected boolean, got 'maybe'");
  {
    nd_config c;
    load_ok("http: {openapi: false}\n", &c);
    ck_assert_int_eq(c.http_openapi, 0);
    nd_config_free(&c);
  }
  load_fails("shutdown: {deadline: 0}\n", "key 'shutdown.deadline': must be between 1ms");
  load_fails("auth: {jwt_secret: [x]}\n", "key 'auth.jwt_secret': expected string, got a list");
  load_fails("websocket: {ping_interval: 1x}\n",
             "key 'websocket.ping_interval': expected duration");
  load_fails("websocket: {max_message: 2GiB}\n",
             "key 'websocket.max_message': must be between 1 and 1073741824 bytes, got 2147483648");
  load_fails("websocket: {max_queue_frames: 0}\n",
             "key 'websocket.max_queue_frames': must be between 1");
  load_fails("websocket: {write_delay: 2s}\n",
             "key 'websocket.write_delay': must be between 0ms and 1000ms");
  load_fails("websocket: {max_connections_per_key: -3}\n",
             "key 'websocket.max_connections_per_key'");
  load_fails("websocket: {allowed_origins: '*'}\n",
             "key 'websocket.allowed_origins': expected a list of strings, got a single value");
  load_fails("websocket: {allowed_origins: [a, {b: c}]}\n",
             "t.yaml:1:34: key 'websocket.allowed_origins[1]': expected string, got a map");
  load_fails("workers: 0\n", "t.yaml:1:10: key 'workers': must be between 1 and 1024, got 0");
  load_fails("workers: many\n", "key 'workers': expected integer, got 'many'");
  load_fails("plugin_dirs: /opt\n", "key 'plugin_dirs': expected a list of strings");
  load_fails("plugin_dirs: ['']\n", "key 'plugin_dirs[0]': must not be empty");
  load_fails("backends: [kafka]\n", "key 'backends': expected a map, got a list");
  load_fails("backends: {kafka: localhost}\n",
             "key 'backends.kafka': expected a map, got a single value");
  load_fails("bus: 1\n", "key 'bus': expected a map");
  load_fails("kv: [1]\n", "key 'kv': expected a map");
  load_fails("bus: {retry: 3}\n", "key 'bus.retry': expected a map");
  load_fails("bus: {retry: {max_attempts: 0}}\n",
             "key 'bus.retry.max_attempts': must be between 1");
  load_fails("bus: {retry: {initial_interval: 0}}\n",
             "key 'bus.retry.initial_interval': must be between 1ms");
  load_fails("bus: {retry: {multiplier: 0.5}}\n",
             "key 'bus.retry.multiplier': must be between 1 and 1000, got 0.5");
  load_fails("bus: {retry: {jitter: 1.5}}\n",
             "key 'bus.retry.jitter': must be between 0 and 1, got 1.5");
  load_fails("bus: {retry: {jitter: lots}}\n",
             "key 'bus.retry.jitter': expected number, got 'lots'");
  load_fails("bus: {retry: {initial_interval: 10s, max_interval: 1s}}\n",
             "t.yaml:1:52: key 'bus.retry.max_interval': "
             "max_interval must not be below initial_interval");
}
END_TEST

START_TEST(load_collects_every_error) {
  nd_config c;
  nd_errors e;
  int rc = load("listen: {port: x}\nadmin: {port: y}\nworkers: 0\nlogging: {level: loud}\n"
                "plugins: [{name: A}]\n", &c, &e);
  ck_assert_int_eq(rc, -1);
  ck_assert_msg(e.n == 5, "%s", text_of(&e));
  nd_errors_free(&e);
  nd_config_free(&c);
}
END_TEST

START_TEST(load_http_limits) {
  nd_config c;
  load_ok("http:\n  idle_timeout: 2s\n  max_pending_body_bytes: 8MiB\n"
          "  max_connections_per_ip: 0\n  trusted_proxies: [10.0.0.1, '2001:db8::1']\n"
          "  cors_origins: ['https://app.example', '*']\n"
          "  rate_limit: {rate: 0.5, burst: 3}\n",
          &c);
  ck_assert_int_eq(c.http_idle_timeout_ms, 2000);
  ck_assert_uint_eq(c.http_max_pending_body, 8 * 1024 * 1024);
  ck_assert_uint_eq(c.http_max_conns_per_ip, 0);
  ck_assert_str_eq(c.http_trusted_proxies[1], "2001:db8::1");
  ck_assert_ptr_null(c.http_trusted_proxies[2]);
  ck_assert_str_eq(c.http_cors_origins[0], "https://app.example");
  ck_assert(c.http_rate == 0.5);
  ck_assert_uint_eq(c.http_rate_burst, 3);
  nd_config_free(&c);
  load_ok("http: {trusted_proxies: [], rate_limit: {rate: 0}}\n", &c);
  ck_assert_ptr_nonnull(c.http_trusted_proxies); /* [] = nobody trusted */
  ck_assert_ptr_null(c.http_trusted_proxies[0]);
  ck_assert(c.http_rate == 0);
  nd_config_free(&c);
  load_fails("http: {trusted_proxies: [localhost]}\n",
             "key 'http.trusted_proxies[0]': 'localhost' is not an IP address");
  load_fails("http: {cors_origins: ['https://app.example/']}\n",
             "key 'http.cors_origins[0]': 'https://app.example/' is not an origin");
  load_fails("websocket: {allowed_origins: [app.example]}\n",
             "'app.example' is not an origin");
  load_fails("http: {idle_timeout: 0}\n", "key 'http.idle_timeout': must be between 1ms");
  load_fails("http: {rate_limit: {rate: -1}}\n", "key 'http.rate_limit.rate'");
  load_fails("http: {rate_limit: {burst: 0}}\n", "key 'http.rate_limit.burst'");
}
END_TEST

START_TEST(load_values_and_sizes) {
  nd_config c;
  load_ok("listen: {port: 0}\nadmin: {port: -1}\nlogging: {level: WARN, format: JSON}\n"
          "http: {max_body: 64 KiB, max_header_bytes: 0x2000, keepalive_timeout: 750}\n"
          "websocket: {max_queue_bytes: 5MB, max_message: \"1MiB\", allowed_origins: []}\n"
          "auth: {jwt_secret: '', internal_token: ~}\n"
          "data_dir: ${NDT_UNSET_DIR:-/tmp/d}\n",
          &c);
  ck_assert_int_eq(c.listen_port, 0);
  ck_assert_int_eq(c.admin_port, -1);
  ck_assert_int_eq(c.log_level, NOTIFD_LOG_WARN);
  ck_assert_int_eq(c.log_json, 1);
  ck_assert_uint_eq(c.http_max_body, 65536);
  ck_assert_uint_eq(c.http_max_header_bytes, 8192);
  ck_assert_int_eq(c.http_keepalive_ms, 750);
  ck_assert_uint_eq(c.ws_max_queue_bytes, 5000000);
  ck_assert_uint_eq(c.ws_max_message, 1048576);
  ck_assert_ptr_nonnull(c.ws_allowed_origins); /* [] = the Host's own origin only */
  ck_assert_ptr_null(c.ws_allowed_origins[0]);
  ck_assert_str_eq(c.jwt_secret, "");
  ck_assert_ptr_null(c.internal_token);
  ck_assert_str_eq(c.data_dir, "/tmp/d");
  nd_config_free(&c);
}
END_TEST

START_TEST(sizes) {
  nd_cfg_tree t = parse_ok("a: 1024\nb: 1KiB\nc: 64 KiB\nd: 1MiB\ne: 2GiB\nf: 1KB\ng: 5MB\nh: 7B\n"
                           "i: 3GB\nj: 0\n"
                           "x1: 1KiBs\nx2: -1\nx3: 1kb\nx4: 1.5MiB\nx5: 99999999999GiB\nx6: KiB\n"
                           "x7: 1 \nx8: +5\nx9: 1  KB x\n");
  struct {
    const char *k;
    uint64_t v;
  } ok[] = {{"a", 1024},        {"b", 1024},       {"c", 65536},
            {"d", 1048576},     {"e", 2147483648ull}, {"f", 1000},
            {"g", 5000000},     {"h", 7},          {"i", 3000000000ull},
            {"j", 0}};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    uint64_t v = 0;
    ck_assert_msg(nd_parse_size(scalar(&t, ok[i].k)->str, &v) == 0 && v == ok[i].v, "%s", ok[i].k);
  }
  const char *bad[] = {"x1", "x2", "x3", "x4", "x5", "x6", "x8", "x9"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint64_t v = 0;
    ck_assert_msg(nd_parse_size(scalar(&t, bad[i])->str, &v) == -1, "%s accepted", bad[i]);
  }
  nd_cfg_tree_free(&t);
}
END_TEST

START_TEST(load_plugins_ok) {
  nd_config c;
  load_ok("plugins:\n"
          "  - name: chat_ws\n"
          "    config:\n"
          "      ping: 1s\n"
          "  - {name: email, path: /x/email.so}\n"
          "  - name: t_1\n"
          "    builtin: true\n"
          "    config: ~\n",
          &c);
  ck_assert_uint_eq(c.nplugins, 3);
  ck_assert_str_eq(c.plugins[0].name, "chat_ws");
  ck_assert_int_eq(c.plugins[0].line, 2);
  ck_assert_int_eq(c.plugins[0].col, 5);
  ck_assert_ptr_nonnull(c.plugins[0].config);
  ck_assert_int_eq(c.plugins[0].config->kind, ND_CFG_MAP);
  ck_assert(!c.plugins[0].config->items[0]->used); /* left to the plugin */
  ck_assert_str_eq(c.plugins[1].path, "/x/email.so");
  ck_assert_int_eq(c.plugins[1].line, 5);
  ck_assert_int_eq(c.plugins[1].col, 5);
  ck_assert_int_eq(c.plugins[2].builtin, 1);
  ck_assert_ptr_null(c.plugins[2].config);
  nd_errors e;
  nd_errors_init(&e);
  nd_cfg_report_unused(c.tree.root, "", &e);
  ck_assert_str_eq(text_of(&e), "t.yaml:4:7: unknown key 'plugins[0].config.ping'");
  nd_errors_free(&e);
  nd_config_free(&c);
}
END_TEST

START_TEST(load_plugin_errors) {
  load_fails("plugins: {a: 1}\n", "t.yaml:1:10: key 'plugins': expected a list of plugin entries");
  load_fails("plugins: [chat]\n", "t.yaml:1:11: key 'plugins[0]': a plugin entry must be a map");
  load_fails("plugins:\n  - path: /x.so\n",
             "t.yaml:2:5: key 'plugins[0]': plugin entry without a name");
  load_fails("plugins:\n  - name: ~\n",
             "t.yaml:2:5: key 'plugins[0]': plugin entry without a name");
  load_fails("plugins:\n  - name: Chat-WS\n",
             "t.yaml:2:11: key 'plugins[0].name': invalid plugin name 'Chat-WS'");
  load_fails("plugins:\n  - name: ''\n", "key 'plugins[0].name': invalid plugin name ''");
  load_fails("plugins:\n  - name: [a]\n", "key 'plugins[0].name': expected string, got a list");
  load_fails("plugins:\n  - name: a\n  - name: b\n  - name: a\n",
             "t.yaml:4:11: key 'plugins[2].name': "
             "duplicate plugin name 'a' (first at line 2, column 5)");
  load_fails("plugins:\n  - {name: a, builtin: maybe}\n",
             "key 'plugins[0].builtin': expected boolean, got 'maybe'");
  load_fails("plugins:\n  - {name: a, builtin: true, path: /a.so}\n",
             "key 'plugins[0].builtin': a builtin plugin cannot also have a path");
  load_fails("plugins:\n  - {name: a, path: ''}\n", "key 'plugins[0].path': must not be empty");
  load_fails("plugins:\n  - {name: a, config: [1, 2]}\n",
             "key 'plugins[0].config': expected a map, got a list");
  char longname[100];
  memset(longname, 'a', 65);
  longname[65] = '\0';
  char y[200];
  snprintf(y, sizeof y, "plugins: [{name: %s}]\n", longname);
  load_fails(y, "invalid plugin name");
  /* Duplicates and bad entries do not stop the other entries' checks. */
  nd_config c;
  nd_errors e;
  ck_assert_int_eq(load("plugins: [{name: a}, {name: a}, {name: B}, {name: c}, 7]\n", &c, &e), -1);
  ck_assert_msg(e.n == 3, "%s", text_of(&e));
  ck_assert_uint_eq(c.nplugins, 2); /* a and c */
  nd_errors_free(&e);
  nd_config_free(&c);
}
END_TEST

START_TEST(load_takes_ownership) {
  /* On failure too: ASan reports a leak if the tree were left behind. */
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  const char *y = "workers: zero\nplugins: [{name: a}]\n";
  ck_assert_int_eq(nd_cfg_parse(y, strlen(y), "t.yaml", &t, &e), 0);
  nd_cfg_node *root = t.root;
  nd_config c;
  ck_assert_int_eq(nd_config_load(&t, &c, &e), -1);
  ck_assert_ptr_null(t.root);
  ck_assert_ptr_null(t.file);
  ck_assert_ptr_eq(c.tree.root, root);
  nd_config_free(&c);
  nd_config_free(&c); /* idempotent */
  nd_errors_free(&e);
  /* A non-map root built by hand is refused, not crashed on. */
  nd_cfg_node *seq = calloc(1, sizeof *seq);
  seq->kind = ND_CFG_SEQ;
  nd_cfg_tree hand = {.root = seq, .file = strdup("h.yaml")};
  nd_errors_init(&e);
  ck_assert_int_eq(nd_config_load(&hand, &c, &e), -1);
  ck_assert_msg(strstr(text_of(&e), "the top level must be a map"), "%s", text_of(&e));
  nd_config_free(&c);
  nd_errors_free(&e);
}
END_TEST


/* After a failed load (plugins never ran), the host's own unknown keys are
 * still listed, and the other modules' subtrees are left alone. */
START_TEST(report_unknown_host_keys) {
  nd_config c;
  nd_errors e;
  int rc = load("listen: {prot: 80, port: x}\n"
                "wokers: 4\n"
                "backends:\n  kafka: {brokers: a}\n  postgres: {}\n"
                "bus:\n  partitions: 4\n  retry: {max_atempts: 3}\n"
                "kv: {key_prefix: p}\n"
                "plugins:\n  - name: a\n    confg: {}\n    config: {anything: 1}\n  - 7\n",
                &c, &e);
  ck_assert_int_eq(rc, -1);
  nd_errors_free(&e);
  nd_errors_init(&e);
  nd_config_report_unknown_host_keys(&c, &e);
  ck_assert_str_eq(text_of(&e), "t.yaml:1:10: unknown key 'listen.prot' (did you mean 'port'?)\n"
                                "t.yaml:2:1: unknown key 'wokers' (did you mean 'workers'?)\n"
                                "t.yaml:5:3: unknown key 'backends.postgres'\n"
                                "t.yaml:8:11: unknown key 'bus.retry.max_atempts' (did you mean 'max_attempts'?)\n"
                                "t.yaml:12:5: unknown key 'plugins[0].confg' (did you mean 'config'?)");
  nd_errors_free(&e);
  nd_config_free(&c);
  nd_errors_init(&e);
  nd_config_report_unknown_host_keys(&c, &e); /* empty config: nothing */
  nd_config_report_unknown_host_keys(NULL, &e);
  ck_assert_uint_eq(e.n, 0);
}
END_TEST

/* The shipped configs load, take their ports from the environment, and
 * leave nothing unread outside the modules' own subtrees. */
START_TEST(load_listen_tls) {
  nd_config c;
  load_ok("listen: {port: 1}", &c);
  ck_assert_ptr_null(c.tls_cert); /* plain HTTP by default */
  nd_config_free(&c);
  load_ok("listen:\n  tls: {cert: c.pem, key: k.pem}\n", &c);
  ck_assert_str_eq(c.tls_cert, "c.pem");
  ck_assert_str_eq(c.tls_key, "k.pem");
  ck_assert_int_eq(c.tls_min_version, 12);
  ck_assert_int_eq(c.tls_handshake_timeout_ms, 10000);
  ck_assert_int_eq(c.tls_key_at->line, 2); /* file errors point at the key */
  ck_assert_int_eq(c.tls_key_at->col, 27);
  nd_config_free(&c);
  load_ok("listen: {tls: {cert: c, key: k, min_version: 1.3, handshake_timeout: 2s}}", &c);
  ck_assert_int_eq(c.tls_min_version, 13);
  ck_assert_int_eq(c.tls_handshake_timeout_ms, 2000);
  nd_config_free(&c);
  load_ok("listen: {tls: ~}", &c);
  ck_assert_ptr_null(c.tls_cert);
  nd_config_free(&c);
  load_fails("listen: {tls: {cert: c}}", "t.yaml:1:15: key 'listen.tls': needs both cert and key");
  load_fails("listen: {tls: {key: k}}", "needs both cert and key");
  load_fails("listen: {tls: {cert: c, key: \"\"}}", "key 'listen.tls.key': must not be empty");
  load_fails("listen: {tls: {cert: c, key: k, min_version: 1.1}}", "expected one of 1.2|1.3");
  load_fails("listen: {tls: [c, k]}", "key 'listen.tls': expected a map");
}
END_TEST

START_TEST(shipped_configs) {
  unsetenv("NOTIFD_PORT");
  unsetenv("NOTIFD_ADMIN_PORT");
  unsetenv("NOTIFD_DATA_DIR");
  unsetenv("NOTIFD_PLUGIN_DIR");
  nd_cfg_tree t;
  nd_errors e;
  nd_errors_init(&e);
  nd_config c;
  ck_assert_int_eq(nd_cfg_parse_file(ND_SOURCE_ROOT "/config/single-node.yaml", &t, &e), 0);
  ck_assert_msg(nd_config_load(&t, &c, &e) == 0, "%s", text_of(&e));
  ck_assert_int_eq(c.listen_port, 8080);
  ck_assert_int_eq(c.admin_port, 9090);
  ck_assert_str_eq(c.data_dir, "./data");
  ck_assert_str_eq(c.plugin_dirs[0], "./build/plugins");
  ck_assert_ptr_null(c.kafka);
  ck_assert_uint_eq(c.nplugins, 6); /* every role */
  ck_assert_int_eq(c.auth_mode, NOTIFD_AUTH_MODE_USERS); /* users sign in */
  ck_assert(c.accounts && c.registration_open);
  nd_config_report_unknown_host_keys(&c, &e); /* plugin config is the plugins' */
  ck_assert_msg(e.n == 0, "%s", text_of(&e));
  nd_config_free(&c);

  setenv("NOTIFD_PORT", "18080", 1);
  setenv("NOTIFD_ADMIN_PORT", "-1", 1);
  setenv("NOTIFD_DATA_DIR", "/tmp/nd", 1);
  setenv("NOTIFD_PLUGIN_DIR", "", 1); /* empty: the default */
  ck_assert_int_eq(nd_cfg_parse_file(ND_SOURCE_ROOT "/config/single-node.yaml", &t, &e), 0);
  ck_assert_msg(nd_config_load(&t, &c, &e) == 0, "%s", text_of(&e));
  ck_assert_int_eq(c.listen_port, 18080);
  ck_assert_int_eq(c.admin_port, -1);
  ck_assert_str_eq(c.data_dir, "/tmp/nd");
  ck_assert_str_eq(c.plugin_dirs[0], "./build/plugins");
  nd_config_free(&c);

  unsetenv("NOTIFD_PORT");
  ck_assert_int_eq(nd_cfg_parse_file(ND_SOURCE_ROOT "/config/example-full.yaml", &t, &e), 0);
  ck_assert_msg(nd_config_load(&t, &c, &e) == 0, "%s", text_of(&e));
  nd_cfg_report_unused(c.tree.root, "", &e);
  for (size_t i = 0; i < e.n; i++) {
    const char *k = strstr(e.msgs[i], "unknown key '");
    ck_assert_msg(k, "%s", e.msgs[i]);
    k += strlen("unknown key '");
    ck_assert_msg(strncmp(k, "backends.", 9) == 0 || strncmp(k, "bus.", 4) == 0 ||
                      strncmp(k, "kv.", 3) == 0 || strncmp(k, "plugins[", 8) == 0,
                  "host key left unread: %s", e.msgs[i]);
  }
  nd_config_free(&c);
  nd_errors_free(&e);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("tree");
  tcase_add_test(tc, errors_format);
  tcase_add_test(tc, tree_positions);
  tcase_add_test(tc, tree_nulls);
  tcase_add_test(tc, tree_empty_documents);
  tcase_add_test(tc, tree_top_level_must_be_map);
  tcase_add_test(tc, tree_syntax_errors);
  tcase_add_test(tc, tree_anchors_tags_refused);
  tcase_add_test(tc, tree_duplicate_and_bad_keys);
  tcase_add_test(tc, tree_depth_limit);
  tcase_add_test(tc, tree_parse_file);
  tcase_add_test(tc, lookup_marks_used);
  tcase_add_test(tc, report_unused_keys);
  tcase_add_test(tc, suggestions_and_forgiving);
  suite_add_tcase(s, tc);
  tc = tcase_create("expand");
  tcase_add_test(tc, expand_variables);
  tcase_add_test(tc, expand_errors);
  suite_add_tcase(s, tc);
  tc = tcase_create("scalars");
  tcase_add_test(tc, durations_table);
  tcase_add_test(tc, bools);
  tcase_add_test(tc, typed_reads);
  tcase_add_test(tc, type_errors);
  tcase_add_test(tc, type_errors_hand_built);
  tcase_add_test(tc, sizes);
  suite_add_tcase(s, tc);
  tc = tcase_create("load");
  tcase_add_test(tc, load_defaults);
  tcase_add_test(tc, load_full_fixture);
  tcase_add_test(tc, load_misspelt_key);
  tcase_add_test(tc, load_type_and_range_errors);
  tcase_add_test(tc, load_collects_every_error);
  tcase_add_test(tc, load_values_and_sizes);
  tcase_add_test(tc, load_http_limits);
  tcase_add_test(tc, load_plugins_ok);
  tcase_add_test(tc, load_plugin_errors);
  tcase_add_test(tc, load_takes_ownership);
  tcase_add_test(tc, report_unknown_host_keys);
  tcase_add_test(tc, shipped_configs);
  tcase_add_test(tc, load_listen_tls);
  suite_add_tcase(s, tc);
  return s;
}
