//! Sign-up and the links in emails: `/subscribe` (form page; POST as form or JSON),
//! `/confirm/{token}` and `/unsubscribe/{token}`.
//!
//! GET and HEAD only ever show a page: link scanners and prefetchers change nothing. The
//! page's button POSTs to the same URL. `POST /unsubscribe/{token}` is also the RFC 8058
//! one-click target: any body (multipart, urlencoded, none), no cookie, no CSRF token, 200.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::App;
use super::pages::{base_context, message, render_page};
use crate::newsletters::Schedule;
use crate::store::subscribers::{Confirmed, SignUp, Subscriber, Unsubscribed};
use crate::subscribers::tokens::{Claims, Purpose, TokenError};
use crate::subscribers::{Email, Evidence, Status, clean_name};

/// The same answer whatever the address's history: no account enumeration.
const CHECK_INBOX: &str = "Check your inbox: we sent a link to confirm the address. If nothing arrives in a few minutes, look in the spam folder.";

/// A sign-up request, whichever way it came.
#[derive(Debug, Default)]
struct SignUpForm {
    email: String,
    name: String,
    /// None: the request did not say, so every newsletter.
    newsletters: Option<Vec<String>>,
    /// The honeypot: people leave it empty, form-filling bots do not.
    website: String,
}

/// A field at fault, for the form page and for JSON (`{"error", "field"}`).
#[derive(Debug)]
struct FieldError {
    field: &'static str,
    message: String,
}

pub async fn form(State(app): State<App>) -> Response {
    subscribe_page(&app, StatusCode::OK, &SignUpForm::default(), None)
}

fn subscribe_page(app: &App, status: StatusCode, f: &SignUpForm, error: Option<&str>) -> Response {
    let cfg = &app.site().config;
    let mut ctx = base_context(app, Some("Subscribe"));
    let newsletters: Vec<Value> = cfg
        .newsletters
        .iter()
        .map(|n| {
            let checked = f
                .newsletters
                .as_ref()
                .is_none_or(|chosen| chosen.iter().any(|c| c == &n.id.0));
            let schedule = how_often(&n.schedule);
            json!({"id": n.id.0, "title": n.title.0, "checked": checked, "schedule": schedule})
        })
        .collect();
    ctx.insert("newsletters".into(), Value::Array(newsletters));
    ctx.insert("form".into(), json!({"email": f.email, "name": f.name}));
    ctx.insert(
        "error".into(),
        error.map(Value::from).unwrap_or(Value::Null),
    );
    render_page(app, status, "subscribe", &ctx)
}

/// When a newsletter comes, for people: "Sent at 07:00, on Friday (Europe/London time)".
fn how_often(s: &Schedule) -> String {
    // `describe` gives "At 07:00, on Friday. (Europe/London time)".
    let text = s.describe().replacen(". (", " (", 1);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("Sent {}{}", first.to_lowercase(), chars.as_str()),
        None => text,
    }
}

pub async fn sign_up(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = super::has_media_type(&headers, "application/json");
    let ip = app.client_ip(peer, &headers);
    if !app.allow_signup(ip) {
        let text =
            "Too many sign-up attempts from your address; please wait a minute and try again.";
        let mut r = if json {
            (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"error": text})),
            )
                .into_response()
        } else {
            message(&app, StatusCode::TOO_MANY_REQUESTS, "Slow down", text)
        };
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        return r;
    }
    let form = if json {
        parse_json(&body)
    } else {
        Ok(parse_form(&body))
    };
    let form = match form {
        Ok(f) => f,
        Err(e) => return field_error(&app, json, &SignUpForm::default(), e),
    };
    let (email, name, newsletters) = match validate(&app, &form) {
        Ok(v) => v,
        Err(e) => return field_error(&app, json, &form, e),
    };
    if !form.website.trim().is_empty() {
        tracing::info!("sign-up from {ip} dropped: the honeypot field was filled in");
        return check_inbox(&app, json);
    }
    let evidence = Evidence {
        source: if json {
            "api:subscribe".into()
        } else {
            "form".into()
        },
        ip: Some(ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect()),
    };
    let cfg = &app.site().config.subscribe;
    match app
        .store()
        .sign_up(
            &email,
            &name,
            &newsletters,
            &evidence,
            Utc::now(),
            cfg.confirmations_per_day,
            cfg.confirm_expiry.0,
        )
        .await
    {
        Ok(SignUp::Queued { .. }) => app.wake_confirmations(),
        Ok(SignUp::Refused(why)) => {
            tracing::info!("sign-up for {email}: no confirmation email sent ({why:?})")
        }
        Err(e) => {
            tracing::error!("sign-up for {email}: {e:#}");
            let text = "Sorry, something went wrong on our side. Please try again in a moment.";
            return if json {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"error": text})),
                )
                    .into_response()
            } else {
                message(
                    &app,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Please try again",
                    text,
                )
            };
        }
    }
    check_inbox(&app, json)
}

fn check_inbox(app: &App, json: bool) -> Response {
    if json {
        (
            StatusCode::ACCEPTED,
            axum::Json(json!({"status": "check-your-inbox", "message": CHECK_INBOX})),
        )
            .into_response()
    } else {
        message(app, StatusCode::OK, "Check your inbox", CHECK_INBOX)
    }
}

fn field_error(app: &App, json: bool, form: &SignUpForm, e: FieldError) -> Response {
    if json {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": e.message, "field": e.field})),
        )
            .into_response()
    } else {
        subscribe_page(app, StatusCode::BAD_REQUEST, form, Some(&e.message))
    }
}

/// `application/x-www-form-urlencoded`, with repeated `newsletters` keys.
fn parse_form(body: &[u8]) -> SignUpForm {
    let mut f = SignUpForm::default();
    let mut chosen = Vec::new();
    let mut saw_choices = false;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "email" => f.email = v.into_owned(),
            "name" => f.name = v.into_owned(),
            "website" => f.website = v.into_owned(),
            "newsletters" | "newsletter" => {
                saw_choices = true;
                chosen.push(v.into_owned());
            }
            _ => {}
        }
    }
    // A form that lists newsletters but ticks none sends no `newsletters` at all; treat that
    // as "every newsletter" only when the publication has no choice to offer.
    f.newsletters = saw_choices.then_some(chosen);
    f
}

fn parse_json(body: &[u8]) -> Result<SignUpForm, FieldError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| FieldError {
        field: "body",
        message: format!("the body is not valid JSON: {e}"),
    })?;
    let obj = v.as_object().ok_or(FieldError {
        field: "body",
        message: "the body must be a JSON object".into(),
    })?;
    let text = |field: &'static str| -> Result<String, FieldError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(FieldError {
                field,
                message: format!("`{field}` must be a string"),
            }),
        }
    };
    let newsletters = match obj.get("newsletters") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(FieldError {
                    field: "newsletters",
                    message: "`newsletters` must be a list of newsletter ids".into(),
                })?,
        ),
        Some(_) => {
            return Err(FieldError {
                field: "newsletters",
                message: "`newsletters` must be a list of newsletter ids".into(),
            });
        }
    };
    Ok(SignUpForm {
        email: text("email")?,
        name: text("name")?,
        newsletters,
        website: text("website")?,
    })
}

fn validate(app: &App, f: &SignUpForm) -> Result<(Email, String, Vec<String>), FieldError> {
    let email = Email::parse(&f.email).map_err(|message| FieldError {
        field: "email",
        message,
    })?;
    let name = clean_name(&f.name).map_err(|message| FieldError {
        field: "name",
        message,
    })?;
    let configured = app.site().config.newsletter_ids();
    let newsletters = match &f.newsletters {
        None => configured.clone(),
        Some(chosen) => {
            for c in chosen {
                if !configured.contains(c) {
                    return Err(FieldError {
                        field: "newsletters",
                        message: format!(
                            "there is no newsletter {c:?} (there are: {})",
                            configured.join(", ")
                        ),
                    });
                }
            }
            if chosen.is_empty() && !configured.is_empty() {
                return Err(FieldError {
                    field: "newsletters",
                    message: "choose at least one newsletter".into(),
                });
            }
            chosen.clone()
        }
    };
    Ok((email, name, newsletters))
}

/// Checks a link's token; the error is a finished page.
#[allow(clippy::result_large_err)] // the error is the response itself, returned at once
fn check_token(app: &App, token: &str, purpose: Purpose) -> Result<Claims, Response> {
    app.keys().verify(token, purpose, Utc::now().timestamp()).map_err(|e| {
        let (status, heading) = match e {
            TokenError::Expired => (StatusCode::GONE, "This link has expired"),
            _ => (StatusCode::BAD_REQUEST, "This link does not work"),
        };
        let more = match (e, purpose) {
            (TokenError::Expired, Purpose::Confirm) => " Sign up again to get a fresh confirmation link.",
            (_, Purpose::Unsubscribe) => " Use the unsubscribe link in a recent email, or reply to it and we will remove you.",
            _ => " Copy the whole link from the email, or sign up again.",
        };
        message(app, status, heading, &format!("{}.{more} Nothing was changed.", capitalize(&e.to_string())))
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn titles(app: &App, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|id| {
            let title = app
                .site()
                .config
                .newsletters
                .iter()
                .find(|n| n.id.0 == *id)
                .map(|n| n.title.0.clone());
            json!({"id": id, "title": title.unwrap_or_else(|| id.clone())})
        })
        .collect()
}

/// "A", "A and B", "A, B and C".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The newsletters' titles, as a sentence.
fn title_list(app: &App, ids: &[String]) -> String {
    let names: Vec<String> = titles(app, ids)
        .into_iter()
        .filter_map(|v| v["title"].as_str().map(str::to_string))
        .collect();
    and_list(&names)
}

const USED: &str = "This confirmation link was already used, or a newer one replaced it. Nothing was changed. If you are not receiving our emails, sign up again.";

/// A confirmation link that no longer confirms anything: for someone already subscribed,
/// that is all they need to hear; otherwise it was used or replaced.
fn used_link(app: &App, sub: Option<&Subscriber>) -> Response {
    match sub {
        Some(s) if s.status == Status::Confirmed => {
            let what = if s.newsletters.is_empty() {
                format!("email from {}", app.site().config.site.title.0)
            } else {
                title_list(app, &s.newsletters)
            };
            message(
                app,
                StatusCode::GONE,
                "You are already subscribed",
                &format!(
                    "This confirmation link was already used: {} already receives {what}. There is nothing more to do.",
                    s.email
                ),
            )
        }
        _ => message(app, StatusCode::GONE, "Link already used", USED),
    }
}

pub async fn confirm_page(State(app): State<App>, Path(token): Path<String>) -> Response {
    let claims = match check_token(&app, &token, Purpose::Confirm) {
        Ok(c) => c,
        Err(page) => return page,
    };
    let sub = match app.store().subscriber(claims.subscriber).await {
        Ok(s) => s,
        Err(e) => return internal(&app, e),
    };
    let pending = match &sub {
        Some(_) => match app.store().pending_signup(claims.subscriber).await {
            Ok(p) => p,
            Err(e) => return internal(&app, e),
        },
        None => None,
    };
    let (sub, wanted) = match (sub, pending) {
        (Some(sub), Some((nonce, wanted))) if claims.nonce.as_deref() == Some(nonce.as_str()) => {
            (sub, wanted)
        }
        (sub, _) => return no_store(used_link(&app, sub.as_ref())),
    };
    let mut ctx = base_context(&app, Some("Confirm"));
    ctx.insert("email".into(), sub.email.into());
    ctx.insert("newsletters".into(), Value::Array(titles(&app, &wanted)));
    no_store(render_page(&app, StatusCode::OK, "confirm", &ctx))
}

pub async fn confirm(State(app): State<App>, Path(token): Path<String>) -> Response {
    let claims = match check_token(&app, &token, Purpose::Confirm) {
        Ok(c) => c,
        Err(page) => return page,
    };
    let Some(nonce) = claims.nonce.as_deref() else {
        return message(
            &app,
            StatusCode::BAD_REQUEST,
            "This link does not work",
            "This link is damaged. Nothing was changed.",
        );
    };
    match app
        .store()
        .confirm(claims.subscriber, nonce, Utc::now())
        .await
    {
        Ok(Confirmed::Done { email, newsletters }) => {
            tracing::info!("{email} confirmed ({})", newsletters.join(", "));
            let what = if newsletters.is_empty() {
                format!("email from {}", app.site().config.site.title.0)
            } else {
                title_list(&app, &newsletters)
            };
            no_store(message(
                &app,
                StatusCode::OK,
                "You are subscribed",
                &format!(
                    "Thank you: {email} will receive {what}. Every email has a link to unsubscribe."
                ),
            ))
        }
        Ok(Confirmed::Stale) => match app.store().subscriber(claims.subscriber).await {
            Ok(sub) => no_store(used_link(&app, sub.as_ref())),
            Err(e) => internal(&app, e),
        },
        Err(e) => internal(&app, e),
    }
}

pub async fn unsubscribe_page(State(app): State<App>, Path(token): Path<String>) -> Response {
    let claims = match check_token(&app, &token, Purpose::Unsubscribe) {
        Ok(c) => c,
        Err(page) => return page,
    };
    let sub = match app.store().subscriber(claims.subscriber).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return message(
                &app,
                StatusCode::OK,
                "Not subscribed",
                "This address is not on our list. Nothing to do.",
            );
        }
        Err(e) => return internal(&app, e),
    };
    let subscribed = !sub.status.is_suppressed() && !sub.newsletters.is_empty();
    let mut ctx = base_context(&app, Some("Unsubscribe"));
    ctx.insert("email".into(), sub.email.into());
    ctx.insert("subscribed".into(), subscribed.into());
    ctx.insert(
        "newsletters".into(),
        Value::Array(titles(&app, &sub.newsletters)),
    );
    let newsletter = claims
        .newsletter
        .filter(|n| sub.newsletters.contains(n))
        .map(|n| titles(&app, &[n]).remove(0));
    ctx.insert("newsletter".into(), newsletter.unwrap_or(Value::Null));
    no_store(render_page(&app, StatusCode::OK, "unsubscribe", &ctx))
}

/// The page's buttons and RFC 8058 one-click. The body is read only to see whether the
/// page's "everything" button was pressed; any other body (one-click's
/// `List-Unsubscribe=One-Click`, multipart, nothing) takes the token's own scope.
pub async fn unsubscribe(
    State(app): State<App>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let claims = match check_token(&app, &token, Purpose::Unsubscribe) {
        Ok(c) => c,
        Err(page) => return page,
    };
    let everything = url::form_urlencoded::parse(&body).any(|(k, v)| k == "scope" && v == "all");
    let scope = if everything {
        None
    } else {
        claims.newsletter.as_deref()
    };
    let site_title = &app.site().config.site.title.0;
    let left = scope.map(|n| title_list(&app, &[n.to_string()]));
    match app
        .store()
        .unsubscribe(claims.subscriber, scope, Utc::now())
        .await
    {
        Ok(Unsubscribed::Done { email, remaining }) => {
            tracing::info!(
                "{email} unsubscribed from {}",
                scope.unwrap_or("everything")
            );
            let (heading, text) = match (&left, remaining.is_empty()) {
                (Some(left), false) => (
                    format!("You left {left}"),
                    format!(
                        "You will no longer receive {left}. You still receive {}.",
                        title_list(&app, &remaining)
                    ),
                ),
                (Some(left), true) => (
                    "You are unsubscribed".to_string(),
                    format!(
                        "You will no longer receive {left}. That was the last of our newsletters for {email}: it will get no more email from {site_title}."
                    ),
                ),
                (None, _) => (
                    "You are unsubscribed".to_string(),
                    format!("{email} will get no more email from {site_title}."),
                ),
            };
            no_store(message(&app, StatusCode::OK, &heading, &text))
        }
        Ok(Unsubscribed::Already { email }) => {
            // Left this newsletter before, but still receives others: say which.
            let still = match (&left, app.store().subscriber(claims.subscriber).await) {
                (Some(_), Ok(Some(s)))
                    if !s.status.is_suppressed() && !s.newsletters.is_empty() =>
                {
                    Some(title_list(&app, &s.newsletters))
                }
                _ => None,
            };
            let text = match (&left, still) {
                (Some(left), Some(still)) => format!(
                    "{email} already left {left}, so there was nothing to change. You still receive {still}."
                ),
                _ => format!("{email} was already unsubscribed. Nothing else to do."),
            };
            no_store(message(&app, StatusCode::OK, "Already unsubscribed", &text))
        }
        Ok(Unsubscribed::NotFound) => message(
            &app,
            StatusCode::OK,
            "Not subscribed",
            "This address is not on our list. Nothing to do.",
        ),
        Err(e) => internal(&app, e),
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn internal(app: &App, e: anyhow::Error) -> Response {
    tracing::error!("{e:#}");
    message(
        app,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Something went wrong on our side; nothing was changed. Please try again later.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever bytes arrive, both body parsers answer: a form, or a field error.
        #[test]
        fn any_body_is_answered(body in proptest::collection::vec(any::<u8>(), 0..400), text in ".{0,200}") {
            let _ = parse_form(&body);
            let _ = parse_json(&body);
            let _ = parse_form(text.as_bytes());
            let quoted = serde_json::to_string(&text).unwrap();
            let json = format!("{{\"email\": {quoted}, \"newsletters\": [{quoted}], \"name\": {quoted}}}");
            let f = parse_json(json.as_bytes());
            prop_assert!(f.is_ok());
            prop_assert_eq!(f.unwrap().email, text);
        }
    }

    #[test]
    fn json_fields_of_the_wrong_type_are_named() {
        let e = parse_json(br#"{"email": 5}"#).err().unwrap();
        assert_eq!(e.field, "email");
        let e = parse_json(br#"{"email": "a@b.org", "newsletters": "daily"}"#)
            .err()
            .unwrap();
        assert_eq!(e.field, "newsletters");
        let e = parse_json(b"[1,2]").err().unwrap();
        assert_eq!(e.field, "body");
    }
}
