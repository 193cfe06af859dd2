//! Objective-C exceptions as errors.
//!
//! An `NSException` thrown inside a framework call unwinds into Rust frames, which cannot
//! catch it: the process aborts (objc2's documentation of `objc2::exception`, "Rust cannot
//! catch foreign exceptions like Objective-C's"). Core ML, Metal, MPSGraph and the private
//! AppleNeuralEngine framework all report some misuse by throwing (an unknown selector, an
//! invalid argument, a shape assertion). Every call into them that can throw therefore runs
//! through [`guard`], which runs it inside `@try`/`@catch` (the four-line trampoline in
//! `src/exception.m`, the technique of objc2's own `exception::catch`, madsmtm/objc2
//! `crates/objc2-exception-helper`) and turns a caught exception into
//! [`SysError::Exception`] with its name and reason.
//!
//! The mapping is portable ([`guard_with`] takes the catcher as a parameter) and tested on
//! any OS with a mock catcher; only the Objective-C catcher is Apple-only.

use crate::error::{Result, SysError};

/// What a caught exception said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caught {
    /// `NSException.name`, when the thrown object is an `NSException`.
    pub name: Option<String>,
    /// `NSException.reason` (or the class of a thrown non-`NSException` object).
    pub reason: Option<String>,
}

/// The error for an exception thrown inside `call` (`None`: a `nil` was thrown).
pub fn error(call: &'static str, caught: Option<Caught>) -> SysError {
    let caught = caught.unwrap_or_default();
    tracing::warn!(
        call,
        name = caught.name.as_deref().unwrap_or(""),
        reason = caught.reason.as_deref().unwrap_or(""),
        "Objective-C exception caught"
    );
    SysError::Exception {
        call,
        name: caught.name,
        reason: caught.reason,
    }
}

/// Runs `body` through `catcher` — a function that runs the callback it is given and
/// reports an exception thrown inside it — and maps a caught exception to
/// [`SysError::Exception`] naming `call`.
pub fn guard_with<R>(
    call: &'static str,
    catcher: impl FnOnce(&mut dyn FnMut()) -> std::result::Result<(), Option<Caught>>,
    body: impl FnOnce() -> R,
) -> Result<R> {
    let mut body = Some(body);
    let mut out = None;
    let mut run = || {
        if let Some(b) = body.take() {
            out = Some(b());
        }
    };
    match catcher(&mut run) {
        Ok(()) => out.ok_or_else(|| SysError::null(call, "the guarded call did not run")),
        Err(caught) => Err(error(call, caught)),
    }
}

/// Runs `body` (a framework call that may throw) and returns its value, or the exception it
/// threw as [`SysError::Exception`]. Rust panics inside `body` pass through unchanged.
/// Elsewhere than on Apple platforms there is nothing to catch and `body` simply runs.
pub fn guard<R>(call: &'static str, body: impl FnOnce() -> R) -> Result<R> {
    #[cfg(target_vendor = "apple")]
    {
        guard_with(call, imp::objc_try, body)
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        let _ = call;
        Ok(body())
    }
}

#[cfg(target_vendor = "apple")]
mod imp {
    use std::any::Any;
    use std::ffi::{c_int, c_void};
    use std::panic::AssertUnwindSafe;

    use objc2::rc::Retained;
    use objc2::runtime::AnyObject;
    use objc2_foundation::NSException;

    use super::Caught;

    // `src/exception.m`, compiled by build.rs when building on a Mac.
    unsafe extern "C-unwind" {
        fn anekit_objc_try(
            body: unsafe extern "C-unwind" fn(*mut c_void),
            context: *mut c_void,
            exception: *mut *mut AnyObject,
        ) -> c_int;
    }

    struct Context<'a> {
        run: &'a mut dyn FnMut(),
        panic: Option<Box<dyn Any + Send>>,
    }

    /// Called by the trampoline inside `@try`. A Rust panic must not unwind through the
    /// Objective-C frames (only Objective-C exceptions are meant to): it is caught here and
    /// resumed after the trampoline returned.
    unsafe extern "C-unwind" fn trampoline(context: *mut c_void) {
        // SAFETY: `context` is the `Context` that `objc_try` passed in, alive and not
        // otherwise borrowed for the duration of this call.
        let ctx = unsafe { &mut *context.cast::<Context<'_>>() };
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| (ctx.run)())) {
            ctx.panic = Some(p);
        }
    }

    fn describe(thrown: &AnyObject) -> Caught {
        match thrown.downcast_ref::<NSException>() {
            Some(e) => Caught {
                name: Some(e.name().to_string()),
                reason: e.reason().map(|r| r.to_string()),
            },
            None => Caught {
                name: None,
                reason: Some(format!(
                    "a {} object was thrown",
                    thrown.class().name().to_string_lossy()
                )),
            },
        }
    }

    /// The Objective-C catcher of [`super::guard`].
    pub(super) fn objc_try(run: &mut dyn FnMut()) -> Result<(), Option<Caught>> {
        let mut ctx = Context { run, panic: None };
        let mut thrown: *mut AnyObject = std::ptr::null_mut();
        // SAFETY: the trampoline has the signature the helper expects; `ctx` outlives the
        // call; `thrown` is a valid out-pointer that receives a retained object or nil.
        let rc = unsafe {
            anekit_objc_try(
                trampoline,
                (&mut ctx as *mut Context<'_>).cast::<c_void>(),
                &mut thrown,
            )
        };
        if let Some(p) = ctx.panic {
            std::panic::resume_unwind(p);
        }
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: the helper stored the thrown object retained (+1), or nil.
        let thrown: Option<Retained<AnyObject>> = unsafe { Retained::from_raw(thrown) };
        Err(thrown.map(|t| describe(&t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catcher that runs the call, then reports that it threw (as Core ML does for a
    /// shape it refuses).
    fn throwing(run: &mut dyn FnMut()) -> std::result::Result<(), Option<Caught>> {
        run();
        Err(Some(Caught {
            name: Some("NSInvalidArgumentException".into()),
            reason: Some("-[MPSGraph placeholderWithShape:]: shape has a zero dimension".into()),
        }))
    }

    fn passing(run: &mut dyn FnMut()) -> std::result::Result<(), Option<Caught>> {
        run();
        Ok(())
    }

    #[test]
    fn a_caught_exception_becomes_a_typed_error_with_name_and_reason() {
        let e =
            guard_with("placeholderWithShape:dataType:name:", throwing, || 1).expect_err("threw");
        match &e {
            SysError::Exception { call, name, reason } => {
                assert_eq!(*call, "placeholderWithShape:dataType:name:");
                assert_eq!(name.as_deref(), Some("NSInvalidArgumentException"));
                assert!(reason.as_deref().unwrap().contains("zero dimension"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string().starts_with(
                "placeholderWithShape:dataType:name: threw NSInvalidArgumentException:"
            )
        );
    }

    #[test]
    fn a_call_that_returns_gives_its_value_and_nil_throws_are_errors_too() {
        assert_eq!(guard_with("x", passing, || 41 + 1).unwrap(), 42);
        let nil = guard_with("x", |_| Err(None), || ()).expect_err("nil thrown");
        assert_eq!(nil.to_string(), "x threw an exception: no reason given");
        // A catcher that never ran the call is an error, not a made-up value.
        let skipped = guard_with("y", |_| Ok(()), || 1).expect_err("not run");
        assert!(skipped.to_string().contains("did not run"), "{skipped}");
    }

    #[test]
    fn off_apple_guard_just_runs_the_call() {
        if cfg!(target_vendor = "apple") {
            return;
        }
        assert_eq!(guard("z", || "ran").unwrap(), "ran");
    }
}
