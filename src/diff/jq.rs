//! Argo CD's `jqPathExpressions`, evaluated with jaq (a Rust jq implementation).
//!
//! Argo CD compiles each expression `EXPR` as `del(EXPR)` and applies it to both the
//! desired and the live object before comparing them; an expression that fails on an
//! object (`.spec.initContainers[]` where there are none: "cannot iterate over null") is
//! skipped for that object, and one that runs longer than `ignore.normalizer.jq.timeout`
//! (default 1 s) is stopped. envdrift does the same: [`JqPath::paths`] evaluates
//! `path(EXPR)` and [`delete_paths`] removes what it selects (jq's `delpaths`).
//!
//! # Bounds
//!
//! An expression comes from the config file and runs on every object its rule selects, so
//! it is bounded three ways, and going over any bound stops it with a [`JqStop`] that the
//! engine reports naming the rule and the object:
//!
//! - its size: at most [`MAX_EXPRESSION_BYTES`] bytes (checked when the config compiles);
//! - the paths it selects: at most [`Limits::max_paths`] per object;
//! - its work: every step of the interpreter (each call of a definition, each context
//!   the interpreter forks: `def f: f; f`, `repeat(.)`, `recurse`, `until`, `limit`, …,
//!   and each number `range` produces: `[range(1e9)]`) is counted, and evaluation stops
//!   after [`Limits::max_steps`] steps or once [`Limits::timeout`] (the config's
//!   `jq_timeout`, default `1s`) has passed, whichever comes first.
//!
//! The count is kept in jaq's context data, whose `clone` the interpreter calls at every
//! such step; when a bound is hit, the meter unwinds the interpreter's stack
//! ([`std::panic::resume_unwind`], which runs no panic hook and prints nothing) and
//! [`JqPath::paths`] catches it. Nothing runs on another thread, so nothing is left
//! spinning: evaluation stops on the thread that runs it, at the next step.
//!
//! What is not interruptible: a single built-in operation runs to completion once
//! started. Those are linear in their inputs (sorting, string functions) except a few
//! that build large values from small numbers: `"x" * 1e9` (string repetition) and
//! `setpath([1e9]; 1)` / `.[1e9] = 1` (an array padded with nulls) allocate in one step
//! as much as the number says. They need an expression written to do so; the config
//! file is trusted to that extent (as Argo CD trusts its ConfigMap).
//!
//! The built-ins that read the environment, the clock or stdin (`env`, `$ENV`, `now`,
//! `input`, `halt`, `debug`, `stderr`) are not available: an expression's result depends
//! on the object only.

use std::cell::Cell;
use std::time::{Duration, Instant};

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Ctx, DataT, Native, Vars, data::HasLut};
use jaq_json::Val;
use serde_json::Value;

/// Largest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// Evaluation bounds (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time per expression and object (Argo CD's `ignore.normalizer.jq.timeout`).
    pub timeout: Duration,
    /// Paths one expression may select in one object.
    pub max_paths: usize,
    /// Interpreter steps per expression and object.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(1),
            max_paths: 10_000,
            max_steps: 2_000_000,
        }
    }
}

/// Why an evaluation was stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqStop {
    #[error("stopped after {0:?} (jq_timeout)")]
    Timeout(Duration),
    #[error("stopped after {0} steps (a loop, or far too much work for one object)")]
    Steps(u64),
    #[error("selects more than {0} paths")]
    TooManyPaths(usize),
}

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{expression}`: {message}")]
pub struct JqCompileError {
    pub expression: String,
    pub message: String,
}

/// The interpreter's data: the look-up table and the meter.
pub struct Metered;

impl DataT for Metered {
    type V<'a> = Val;
    type Data<'a> = Meter<'a>;
}

/// Counts steps; see the module doc.
pub struct Meter<'a> {
    lut: &'a jaq_core::Lut<Metered>,
    budget: &'a Budget,
}

impl Clone for Meter<'_> {
    fn clone(&self) -> Self {
        self.budget.tick();
        Meter {
            lut: self.lut,
            budget: self.budget,
        }
    }
}

impl<'a> HasLut<'a, Metered> for Meter<'a> {
    fn lut(&self) -> &'a jaq_core::Lut<Metered> {
        self.lut
    }
}

/// The unwinding payload of a stopped evaluation.
struct Stopped(JqStop);

#[doc(hidden)]
pub struct Budget {
    steps: Cell<u64>,
    max_steps: u64,
    start: Instant,
    timeout: Duration,
}

impl Budget {
    fn tick(&self) {
        let s = self.steps.get().saturating_add(1);
        self.steps.set(s);
        if s > self.max_steps {
            std::panic::resume_unwind(Box::new(Stopped(JqStop::Steps(self.max_steps))));
        }
        // Reading the clock costs more than a step: every 256 steps.
        if s.is_multiple_of(256) && self.start.elapsed() >= self.timeout {
            std::panic::resume_unwind(Box::new(Stopped(JqStop::Timeout(self.timeout))));
        }
    }
}

/// A compiled `jqPathExpressions` entry.
pub struct JqPath {
    source: String,
    filter: jaq_core::Filter<Metered>,
    limits: Limits,
    /// Objects on which a bound stopped the expression (see [`JqPath::disabled`]).
    stops: std::sync::atomic::AtomicUsize,
}

/// After this many objects stopped by a bound, an expression is no longer evaluated: a
/// runaway expression would otherwise cost its whole bound (up to `jq_timeout`) on each of
/// thousands of objects. It stays off for the life of the compiled config (a daemon: until
/// it restarts with a fixed config), and every result says so.
pub const MAX_STOPPED_OBJECTS: usize = 3;

impl std::fmt::Debug for JqPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JqPath")
            .field("source", &self.source)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Built-ins replaced: `range/3` counts each number it makes; the ones that read the
/// environment, the clock or stdin, or stop the process, fail instead.
const UNAVAILABLE: &[&str] = &[
    "env",
    "now",
    "halt",
    "halt_error",
    "input",
    "inputs",
    "debug_empty",
    "stderr_empty",
    "input_filename",
    "localtime",
    "mktime",
    "gmtime",
];

fn natives() -> Vec<jaq_core::native::Fun<Metered>> {
    let mut funs: Vec<jaq_core::native::Fun<Metered>> = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .map(|(name, args, f)| {
            if name == "range" && args.len() == 3 {
                (name, args, Native::<Metered>::new(metered_range))
            } else if UNAVAILABLE.contains(&name) {
                (name, args, Native::<Metered>::new(unavailable))
            } else {
                (name, args, f)
            }
        })
        .collect();
    funs.shrink_to_fit();
    funs
}

fn unavailable<'a>(cv: jaq_core::Cv<'a, Metered>) -> jaq_core::ValXs<'a, Val> {
    let _ = cv;
    Box::new(std::iter::once(Err(jaq_core::Exn::from(
        jaq_core::Error::str(
            "this built-in is not available in envdrift (no environment, clock or input)",
        ),
    ))))
}

/// `range($from; $to; $by)`, one step per number.
fn metered_range<'a>(mut cv: jaq_core::Cv<'a, Metered>) -> jaq_core::ValXs<'a, Val> {
    let by = cv.0.pop_var();
    let to = cv.0.pop_var();
    let from = cv.0.pop_var();
    let budget = cv.0.data().budget;
    let cmp = by
        .partial_cmp(&Val::from(0isize))
        .unwrap_or(std::cmp::Ordering::Equal);
    let mut next: Option<Val> = Some(from);
    Box::new(std::iter::from_fn(move || {
        let x = next.take()?;
        let go = match cmp {
            std::cmp::Ordering::Greater => x < to,
            std::cmp::Ordering::Less => x > to,
            std::cmp::Ordering::Equal => x != to,
        };
        if !go {
            return None;
        }
        budget.tick();
        match x.clone() + by.clone() {
            Ok(n) => next = Some(n),
            Err(e) => return Some(Err(jaq_core::Exn::from(e))),
        }
        Some(Ok(x))
    }))
}

impl JqPath {
    /// Compiles `path(EXPR)`.
    ///
    /// # Errors
    /// An expression too long, that does not parse, or that names an unknown filter or
    /// variable; the message says where.
    pub fn compile(expression: &str, limits: Limits) -> Result<JqPath, JqCompileError> {
        let fail = |message: String| JqCompileError {
            expression: expression.to_string(),
            message,
        };
        if expression.len() > MAX_EXPRESSION_BYTES {
            return Err(fail(format!(
                "longer than {MAX_EXPRESSION_BYTES} bytes ({})",
                expression.len()
            )));
        }
        if expression.trim().is_empty() {
            return Err(fail("empty expression".into()));
        }
        let code = format!("path({expression})");
        let arena = Arena::default();
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let loader = Loader::new(defs);
        let modules = loader
            .load(
                &arena,
                File {
                    code: &code,
                    path: (),
                },
            )
            .map_err(|errs| fail(load_errors(&code, &errs)))?;
        let filter = jaq_core::Compiler::default()
            .with_funs(natives())
            .compile(modules)
            .map_err(|errs| {
                let names: Vec<String> = errs
                    .iter()
                    .flat_map(|(_, es)| es.iter())
                    .map(|(name, u)| format!("undefined {} `{name}`", u.as_str()))
                    .collect();
                fail(names.join("; "))
            })?;
        Ok(JqPath {
            source: expression.to_string(),
            filter,
            limits,
            stops: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether a bound stopped the expression on [`MAX_STOPPED_OBJECTS`] objects already:
    /// it is then not evaluated any more.
    pub fn disabled(&self) -> bool {
        self.stops.load(std::sync::atomic::Ordering::Relaxed) >= MAX_STOPPED_OBJECTS
    }

    /// Counts one object on which a bound stopped the expression.
    pub fn record_stop(&self) {
        self.stops
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The paths the expression selects in `value`, as jq's `path(EXPR)` yields them.
    /// `Ok(None)` when the expression fails on this object (Argo CD then skips it too).
    ///
    /// # Errors
    /// A bound was hit (see the module doc).
    pub fn paths(&self, value: &Value) -> Result<Option<Vec<Vec<PathKey>>>, JqStop> {
        let Ok(input) = <Val as serde::Deserialize>::deserialize(value) else {
            return Ok(None);
        };
        let budget = Budget {
            steps: Cell::new(0),
            max_steps: self.limits.max_steps,
            start: Instant::now(),
            timeout: self.limits.timeout,
        };
        let max_paths = self.limits.max_paths;
        let run = || -> Result<Option<Vec<Vec<PathKey>>>, JqStop> {
            let meter = Meter {
                lut: &self.filter.lut,
                budget: &budget,
            };
            let ctx = Ctx::<Metered>::new(meter, Vars::new([]));
            let mut out = Vec::new();
            for r in self.filter.id.run((ctx, input)) {
                let Ok(path) = r else {
                    return Ok(None);
                };
                if out.len() >= max_paths {
                    return Err(JqStop::TooManyPaths(max_paths));
                }
                match path_keys(&path) {
                    Some(p) => out.push(p),
                    None => return Ok(None),
                }
            }
            Ok(Some(out))
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(r) => r,
            Err(payload) => match payload.downcast::<Stopped>() {
                Ok(stopped) => Err(stopped.0),
                Err(other) => std::panic::resume_unwind(other),
            },
        }
    }
}

fn load_errors(code: &str, errs: &jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    // Columns in the user's expression (the code is `path(` + expression + `)`).
    let col = |part: &str| {
        let at = jaq_core::load::span(code, part).start;
        at.saturating_sub("path(".len()) + 1
    };
    let mut msgs = Vec::new();
    for (_, e) in errs {
        match e {
            Error::Io(v) => msgs.extend(v.iter().map(|(p, m)| format!("{p}: {m}"))),
            Error::Lex(v) => msgs.extend(
                v.iter()
                    .map(|(exp, at)| format!("expected {} at column {}", exp.as_str(), col(at))),
            ),
            Error::Parse(v) => msgs.extend(v.iter().map(|(exp, at)| {
                if at.is_empty() {
                    format!("expected {} at the end", exp.as_str())
                } else {
                    format!("expected {} at column {}", exp.as_str(), col(at))
                }
            })),
        }
    }
    if msgs.is_empty() {
        "does not parse".into()
    } else {
        msgs.join("; ")
    }
}

/// One step of a jq path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathKey {
    Key(String),
    Index(i64),
    /// `.[start:end]`
    Slice(Option<i64>, Option<i64>),
}

fn num(v: &Val) -> Option<i64> {
    match v {
        Val::Num(_) => {
            let f: f64 = v.to_string().parse().ok()?;
            (f.is_finite() && f.abs() < 9.0e15).then(|| f.floor() as i64)
        }
        _ => None,
    }
}

fn path_keys(path: &Val) -> Option<Vec<PathKey>> {
    let Val::Arr(items) = path else { return None };
    items
        .iter()
        .map(|k| match k {
            Val::TStr(_) | Val::BStr(_) => {
                let s = k.to_string();
                // Display quotes strings as JSON.
                serde_json::from_str::<String>(&s).ok().map(PathKey::Key)
            }
            Val::Num(_) => num(k).map(PathKey::Index),
            Val::Obj(m) => {
                let get = |name: &str| {
                    m.get(&Val::utf8_str(name.as_bytes().to_vec()))
                        .and_then(|v| if *v == Val::Null { None } else { Some(v) })
                };
                let start = match get("start") {
                    Some(v) => Some(num(v)?),
                    None => None,
                };
                let end = match get("end") {
                    Some(v) => Some(num(v)?),
                    None => None,
                };
                Some(PathKey::Slice(start, end))
            }
            _ => None,
        })
        .collect()
}

/// The value at a jq path, if any.
pub fn get_path<'v>(v: &'v Value, path: &[PathKey]) -> Option<&'v Value> {
    let mut cur = v;
    for k in path {
        cur = match (k, cur) {
            (PathKey::Key(k), Value::Object(m)) => m.get(k)?,
            (PathKey::Index(i), Value::Array(a)) => a.get(resolve(*i, a.len())?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn resolve(i: i64, len: usize) -> Option<usize> {
    if i >= 0 {
        usize::try_from(i).ok()
    } else {
        len.checked_sub(usize::try_from(i.unsigned_abs()).ok()?)
    }
}

fn slice_range(start: Option<i64>, end: Option<i64>, len: usize) -> (usize, usize) {
    let clamp = |i: i64| -> usize {
        if i < 0 {
            len.saturating_sub(usize::try_from(i.unsigned_abs()).unwrap_or(usize::MAX))
        } else {
            usize::try_from(i).unwrap_or(usize::MAX).min(len)
        }
    };
    let s = start.map_or(0, clamp);
    let e = end.map_or(len, clamp);
    (s, e.max(s))
}

/// Removes the paths from `v` like jq's `delpaths`: sorted, the last first, so that
/// deleting a list item does not shift the items the other paths name. Paths that do not
/// exist are skipped. Returns how many were removed.
pub fn delete_paths(v: &mut Value, mut paths: Vec<Vec<PathKey>>) -> usize {
    // Resolve negative indices and slices against the value first, so that sorting
    // orders list items by position.
    let mut resolved: Vec<Vec<Resolved>> = paths
        .drain(..)
        .filter_map(|p| resolve_path(v, &p))
        .collect();
    resolved.sort();
    resolved.dedup();
    let mut removed = 0;
    for p in resolved.iter().rev() {
        if remove_at(v, p) {
            removed += 1;
        }
    }
    removed
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resolved {
    Index(usize),
    Range(usize, usize),
    Key(String),
}

fn resolve_path(v: &Value, path: &[PathKey]) -> Option<Vec<Resolved>> {
    let mut cur = Some(v);
    let mut out = Vec::with_capacity(path.len());
    for (n, k) in path.iter().enumerate() {
        let last = n + 1 == path.len();
        match (k, cur) {
            (PathKey::Key(k), Some(Value::Object(m))) => {
                cur = m.get(k);
                out.push(Resolved::Key(k.clone()));
            }
            (PathKey::Index(i), Some(Value::Array(a))) => {
                let i = resolve(*i, a.len())?;
                cur = a.get(i);
                out.push(Resolved::Index(i));
            }
            (PathKey::Slice(s, e), Some(Value::Array(a))) if last => {
                let (s, e) = slice_range(*s, *e, a.len());
                out.push(Resolved::Range(s, e));
            }
            _ => return None,
        }
        cur?;
    }
    Some(out)
}

fn remove_at(v: &mut Value, path: &[Resolved]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        // `path(.)`: jq's `del(.)` makes the value null.
        let was = !v.is_null();
        *v = Value::Null;
        return was;
    };
    let mut cur = v;
    for k in parents {
        let next = match (k, cur) {
            (Resolved::Key(k), Value::Object(m)) => m.get_mut(k),
            (Resolved::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Resolved::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        (Resolved::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        (Resolved::Range(s, e), Value::Array(a)) if *s < *e && *e <= a.len() => {
            a.drain(*s..*e);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jq(e: &str) -> JqPath {
        JqPath::compile(e, Limits::default()).unwrap()
    }

    fn del(e: &str, mut v: Value) -> Value {
        let paths = jq(e).paths(&v).unwrap().unwrap_or_default();
        delete_paths(&mut v, paths);
        v
    }

    #[test]
    fn deletes_what_the_expression_selects() {
        let d = json!({"spec": {"template": {"spec": {"initContainers": [
            {"name": "a"}, {"name": "injected-init-container"}, {"name": "b"}]}}}});
        let out = del(
            r#".spec.template.spec.initContainers[] | select(.name == "injected-init-container")"#,
            d,
        );
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"initContainers": [{"name": "a"}, {"name": "b"}]}}}})
        );
        let w =
            json!({"webhooks": [{"clientConfig": {"caBundle": "x", "url": "u"}}, {"name": "n"}]});
        assert_eq!(
            del(".webhooks[]?.clientConfig.caBundle", w),
            json!({"webhooks": [{"clientConfig": {"url": "u"}}, {"name": "n"}]})
        );
        // Several list items: the later first, so indices stay right.
        let l = json!({"a": [0, 1, 2, 3, 4]});
        assert_eq!(
            del(".a[] | select(. % 2 == 0)", l.clone()),
            json!({"a": [1, 3]})
        );
        assert_eq!(del(".a[-1]", l.clone()), json!({"a": [0, 1, 2, 3]}));
        assert_eq!(del(".a[1:3]", l), json!({"a": [0, 3, 4]}));
        assert_eq!(
            del(
                r#".metadata.annotations["a/b"]"#,
                json!({"metadata": {"annotations": {"a/b": "1", "c": "2"}}})
            ),
            json!({"metadata": {"annotations": {"c": "2"}}})
        );
    }

    #[test]
    fn an_expression_failing_on_an_object_selects_nothing_there() {
        // `null | .[]` fails: Argo CD skips the patch for that object.
        let p = jq(".spec.initContainers[] | select(.name == \"x\")");
        assert_eq!(p.paths(&json!({"spec": {}})).unwrap(), None);
        assert_eq!(
            p.paths(&json!({"spec": {"initContainers": []}})).unwrap(),
            Some(vec![])
        );
        // Not a path expression: an error, so nothing.
        assert_eq!(jq("1 + 1").paths(&json!({})).unwrap(), None);
    }

    #[test]
    fn compile_errors_say_where() {
        let e = JqPath::compile(".spec | select(", Limits::default()).unwrap_err();
        assert!(e.message.contains("expected"), "{e}");
        let e = JqPath::compile("nosuchfilter(1)", Limits::default()).unwrap_err();
        assert!(e.message.contains("undefined filter `nosuchfilter`"), "{e}");
        let e = JqPath::compile(&".a".repeat(3000), Limits::default()).unwrap_err();
        assert!(e.message.contains("longer than 4096 bytes"), "{e}");
        let e = JqPath::compile(" ", Limits::default()).unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
    }

    #[test]
    fn loops_and_huge_results_are_stopped() {
        let v = json!({"a": 1});
        for e in [
            "def f: f; f",
            "def f: (.a, f); f",
            "repeat(.)",
            "select(([range(1e9)] | length) > 0)",
            "last(range(1e12)) as $x | .a",
            "until(false; .)",
            "select(([limit(1e9; repeat(1))] | length) > 0)",
            ".a as $x | reduce range(1e10) as $i (.; .) | .a",
        ] {
            let started = Instant::now();
            let r = jq(e).paths(&v);
            assert!(
                matches!(
                    r,
                    Err(JqStop::Steps(_) | JqStop::Timeout(_) | JqStop::TooManyPaths(_))
                ),
                "{e}: {r:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        }
        // A tight timeout stops before the step bound.
        let p = JqPath::compile(
            "def f: f; f",
            Limits {
                timeout: Duration::from_millis(1),
                max_steps: u64::MAX,
                ..Limits::default()
            },
        )
        .unwrap();
        assert_eq!(p.paths(&v), Err(JqStop::Timeout(Duration::from_millis(1))));
        // Many paths: the count bound.
        let big = json!({"a": (0..20_000).collect::<Vec<_>>()});
        assert_eq!(jq(".a[]").paths(&big), Err(JqStop::TooManyPaths(10_000)));
        // The environment is not readable.
        assert_eq!(jq("env | .HOME").paths(&v).unwrap(), None);
    }

    #[test]
    fn a_compiled_expression_is_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<JqPath>();
    }
}
