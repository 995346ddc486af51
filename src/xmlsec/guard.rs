//! Defence in depth around libxml2 and xmlsec, which samael drives for the signature step.
//!
//! The pre-screen already keeps every external or foreign construct away from them; this
//! module makes sure that, should anything slip through, they still cannot act on it:
//! - libxml2's external entity loader refuses everything (no DTD, entity or XInclude load);
//! - xmlsec's URI input callbacks (file, http, ftp) are removed, so a Reference can open
//!   nothing but the document itself;
//! - xmlsec's transform registry keeps only what an Entra signature uses (exclusive c14n,
//!   enveloped-signature, RSA-SHA256 / SHA-256 and the SHA-1 pair), so XSLT, XPath, XPath2,
//!   XPointer, Base64 and the rest are unknown to it;
//! - libxml2's generic and structured error handlers and xmlsec's error callback forward to
//!   `tracing` (debug level, error codes and function names only, never message text, which
//!   can carry document content); nothing is written raw to stderr.
//!
//! libxml2 and libxmlsec1 are linked already (through samael); the few functions needed are
//! declared here.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::Once;

type XmlSecSize = c_uint; // xmlsec1-config defines XMLSEC_NO_SIZE_T on Debian 12
type TransformId = *const c_void;

#[repr(C)]
struct XmlErrorHead {
    domain: c_int,
    code: c_int,
    message: *const c_char,
    level: c_int,
}

type EntityLoader = unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void) -> *mut c_void;
/// libxml2's generic handler is variadic (`ctx, msg, ...`); only the first two arguments are read,
/// which the platform C ABIs this runs on (x86-64 SysV, AArch64 Linux) allow.
type GenericError = unsafe extern "C" fn(*mut c_void, *const c_char);
type StructuredError = unsafe extern "C" fn(*mut c_void, *const XmlErrorHead);
type XmlSecErrorCallback =
    unsafe extern "C" fn(*const c_char, c_int, *const c_char, *const c_char, *const c_char, c_int, *const c_char);

extern "C" {
    fn xmlSetExternalEntityLoader(f: Option<EntityLoader>);
    fn xmlSetGenericErrorFunc(ctx: *mut c_void, handler: Option<GenericError>);
    fn xmlThrDefSetGenericErrorFunc(ctx: *mut c_void, handler: Option<GenericError>);
    fn xmlSetStructuredErrorFunc(ctx: *mut c_void, handler: Option<StructuredError>);
    fn xmlThrDefSetStructuredErrorFunc(ctx: *mut c_void, handler: Option<StructuredError>);

    fn xmlSecErrorsSetCallback(callback: Option<XmlSecErrorCallback>);
    fn xmlSecIOCleanupCallbacks();
    fn xmlSecTransformIdsGet() -> *mut c_void;
    fn xmlSecPtrListGetSize(list: *mut c_void) -> XmlSecSize;
    fn xmlSecPtrListGetItem(list: *mut c_void, pos: XmlSecSize) -> *mut c_void;
    fn xmlSecPtrListEmpty(list: *mut c_void);
    fn xmlSecTransformIdsRegister(id: TransformId) -> c_int;

    fn xmlSecTransformExclC14NGetKlass() -> TransformId;
    fn xmlSecTransformEnvelopedGetKlass() -> TransformId;
    fn xmlSecOpenSSLTransformRsaSha256GetKlass() -> TransformId;
    fn xmlSecOpenSSLTransformSha256GetKlass() -> TransformId;
    fn xmlSecOpenSSLTransformRsaSha1GetKlass() -> TransformId;
    fn xmlSecOpenSSLTransformSha1GetKlass() -> TransformId;
}

unsafe extern "C" fn refuse_entity(_url: *const c_char, _id: *const c_char, _ctxt: *mut c_void) -> *mut c_void {
    tracing::debug!(target: "trailvault::xmlsec", "libxml2 asked to load an external entity; refused");
    std::ptr::null_mut()
}

unsafe extern "C" fn generic_error(_ctx: *mut c_void, _msg: *const c_char) {
    tracing::debug!(target: "trailvault::xmlsec", "libxml2 reported an error");
}

unsafe extern "C" fn structured_error(_ctx: *mut c_void, err: *const XmlErrorHead) {
    if err.is_null() {
        tracing::debug!(target: "trailvault::xmlsec", "libxml2 reported an error");
        return;
    }
    // SAFETY: libxml2 passes a valid xmlError whose first fields are domain, code, message, level.
    let e = unsafe { &*err };
    tracing::debug!(
        target: "trailvault::xmlsec",
        domain = e.domain,
        code = e.code,
        level = e.level,
        "libxml2 reported an error"
    );
}

unsafe extern "C" fn xmlsec_error(
    _file: *const c_char,
    _line: c_int,
    func: *const c_char,
    _object: *const c_char,
    _subject: *const c_char,
    reason: c_int,
    _msg: *const c_char,
) {
    // The function name is xmlsec's own (static) text; subject and message can carry
    // document values (URIs, node names), so they are left out.
    let func = if func.is_null() {
        String::new()
    } else {
        // SAFETY: xmlsec passes a NUL-terminated static string (__func__).
        unsafe { CStr::from_ptr(func) }
            .to_string_lossy()
            .chars()
            .take(64)
            .collect()
    };
    tracing::debug!(target: "trailvault::xmlsec", function = func, reason, "xmlsec reported an error");
}

/// Installs the thread's libxml2 error handlers. Call on the thread that is about to run
/// xmlsec (libxml2 keeps these per thread).
pub fn enter() {
    // SAFETY: plain setters of libxml2 globals, with handlers that never unwind.
    unsafe {
        xmlSetGenericErrorFunc(std::ptr::null_mut(), Some(generic_error));
        xmlSetStructuredErrorFunc(std::ptr::null_mut(), Some(structured_error));
    }
}

static BEFORE_INIT: Once = Once::new();
static AFTER_INIT: Once = Once::new();

/// Everything that can be set before xmlsec is initialised: error handlers and the
/// refusing entity loader. Idempotent.
pub fn before_xmlsec() {
    BEFORE_INIT.call_once(|| {
        // SAFETY: global setters; the handlers never unwind.
        unsafe {
            xmlThrDefSetGenericErrorFunc(std::ptr::null_mut(), Some(generic_error));
            xmlThrDefSetStructuredErrorFunc(std::ptr::null_mut(), Some(structured_error));
            xmlSetExternalEntityLoader(Some(refuse_entity));
            xmlSecErrorsSetCallback(Some(xmlsec_error));
        }
    });
    enter();
}

/// Once xmlsec is initialised (samael does it lazily): no URI callbacks, the transform
/// allow-list, and the error callback again (in case initialisation reset it). Idempotent.
pub fn after_xmlsec_init() {
    AFTER_INIT.call_once(|| {
        // SAFETY: xmlsec is initialised (samael's context creation succeeded before this is
        // called); the registry is a list of static klass pointers, removing entries frees nothing.
        unsafe {
            xmlSecErrorsSetCallback(Some(xmlsec_error));
            xmlSetExternalEntityLoader(Some(refuse_entity));
            xmlSecIOCleanupCallbacks();
            let keep = [
                xmlSecTransformExclC14NGetKlass(),
                xmlSecTransformEnvelopedGetKlass(),
                xmlSecOpenSSLTransformRsaSha256GetKlass(),
                xmlSecOpenSSLTransformSha256GetKlass(),
                xmlSecOpenSSLTransformRsaSha1GetKlass(),
                xmlSecOpenSSLTransformSha1GetKlass(),
            ];
            let list = xmlSecTransformIdsGet();
            if !list.is_null() {
                // Removing in place would leave holes that stop xmlsec's lookups; rebuild instead.
                let present: Vec<TransformId> = (0..xmlSecPtrListGetSize(list))
                    .map(|i| xmlSecPtrListGetItem(list, i) as TransformId)
                    .filter(|id| keep.contains(id))
                    .collect();
                xmlSecPtrListEmpty(list);
                for id in present {
                    xmlSecTransformIdsRegister(id);
                }
            }
            tracing::debug!(
                target: "trailvault::xmlsec",
                transforms = if list.is_null() { 0 } else { xmlSecPtrListGetSize(list) },
                "xmlsec restricted to the Entra transforms, URI input callbacks removed"
            );
        }
    });
    enter();
}

/// Restricts libxml2 and xmlsec before samael first uses them, and installs this thread's
/// error handlers. Cheap after the first call; call before every use of samael's xmlsec.
pub fn harden() {
    before_xmlsec();
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // samael initialises xmlsec lazily, on its first key load; a dummy one does it here
        // (it fails on purpose: the certificate is not one), so the registry and callbacks can
        // be restricted before any real document is verified.
        use samael::crypto::{CertificateDer, Crypto, CryptoProvider};
        let _ = guarded(|| Crypto::verify_signed_xml("<a/>", &CertificateDer::from(vec![0u8]), None));
    });
    after_xmlsec_init();
}

thread_local! {
    static IN_XMLSEC: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (samael's xmlsec work) catching a panic, which is then logged through `tracing`
/// (its location only: a panic message could quote the document) instead of the default
/// hook's raw line on stderr. Panics elsewhere keep the process's own hook.
pub fn guarded<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> std::thread::Result<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_XMLSEC.with(Cell::get) {
                let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                tracing::error!(
                    target: "trailvault::xmlsec",
                    location = location.unwrap_or_default(),
                    "the signature library panicked on this input; it is refused"
                );
            } else {
                previous(info)
            }
        }));
    });
    let was = IN_XMLSEC.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(f);
    IN_XMLSEC.with(|c| c.set(was));
    result
}

/// The number of transforms xmlsec still knows (for tests).
pub fn registered_transforms() -> usize {
    // SAFETY: reads the size of xmlsec's static registry list.
    unsafe {
        let list = xmlSecTransformIdsGet();
        if list.is_null() {
            0
        } else {
            xmlSecPtrListGetSize(list) as usize
        }
    }
}
