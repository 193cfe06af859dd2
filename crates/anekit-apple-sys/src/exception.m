// Runs `body(context)` inside @try/@catch. Returns 0 when it returned, 1 when it threw; the
// thrown object is then stored (retained) in *exception. Rust cannot catch Objective-C
// exceptions (they abort the process when they unwind into Rust frames), so every framework
// call that can throw goes through this trampoline (anekit-apple-sys src/exception.rs).
// The same technique as objc2's exception helper (madsmtm/objc2,
// crates/objc2-exception-helper/extern/exception.m) and Apple's documentation of
// @try/@catch ("Exception Programming Topics", Handling Exceptions).

id objc_retain(id value);

int anekit_objc_try(void (*body)(void *), void *context, id *exception) {
    @try {
        body(context);
        *exception = (id)0;
        return 0;
    } @catch (id thrown) {
        *exception = objc_retain(thrown);
        return 1;
    }
}
