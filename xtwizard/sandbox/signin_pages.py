"""HTML of the sandbox's sign-in experience: account picker, consent, device code, errors, form_post.

The markup is deliberately plain: every step is one `<form>` with an `id`, hidden fields carry the
request (the pages are stateless, no cookies), and every control has a label or an accessible name, so
that a person with a screen reader, a keyboard-only user and the scripted test browser all use the same
page.  Nothing here is Microsoft's markup; only the flow and the AADSTS texts follow the real service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

_STYLE = """
body{font-family:"Segoe UI",system-ui,sans-serif;background:Canvas;color:CanvasText;margin:0}
main{max-width:30rem;margin:3rem auto;padding:2rem;border:1px solid GrayText;border-radius:4px}
h1{font-size:1.5rem;font-weight:600;margin-top:0}
.sandbox{font-size:.8rem;color:GrayText}
button{display:block;width:100%;text-align:left;margin:.4rem 0;padding:.6rem;font:inherit}
.actions button{display:inline-block;width:auto;margin-right:.5rem}
ul{padding-left:1.2rem}
[role=alert]{border-left:4px solid #c50f1f;padding:.5rem 1rem}
label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=email]{width:100%;padding:.4rem;font:inherit;box-sizing:border-box}
"""


def e(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{e(title)}</title><style>{_STYLE}</style></head>\n<body><main>\n"
        "<p class=\"sandbox\">Microsoft 365 sandbox (xtwizard) &mdash; simulated sign-in, no real account is used.</p>\n"
        f"{body}\n</main></body></html>\n"
    )


def hidden_fields(fields: Mapping[str, str]) -> str:
    return "".join(f"<input type=\"hidden\" name=\"{e(k)}\" value=\"{e(v)}\">\n" for k, v in fields.items())


def signin_page(*, action: str, hidden: Mapping[str, str], accounts: Iterable[tuple[str, str]],
                app_name: str, where: str, login_hint: str = "", heading: str = "Pick an account") -> str:
    """The account picker: one button per account, plus 'Use another account' with a UPN field."""
    buttons = []
    for upn, display in accounts:
        current = " aria-current=\"true\"" if login_hint and upn.lower() == login_hint.lower() else ""
        buttons.append(f"<button type=\"submit\" name=\"account\" value=\"{e(upn)}\"{current}>"
                       f"<strong>{e(display)}</strong><br><span>{e(upn)}</span></button>")
    listing = "\n".join(buttons) or "<p>No accounts of this organization are set up for sign-in.</p>"
    return page(heading, f"""
<h1>{e(heading)}</h1>
<p>to continue to <strong>{e(app_name)}</strong> ({e(where)})</p>
<form id="signin" method="post" action="{e(action)}" aria-label="Accounts">
{hidden_fields(hidden)}<input type="hidden" name="step" value="pick">
{listing}
</form>
<form id="other" method="post" action="{e(action)}" aria-label="Use another account">
{hidden_fields(hidden)}<input type="hidden" name="step" value="pick">
<label for="account-upn">Use another account (email, phone, or Skype)</label>
<input type="email" id="account-upn" name="account" value="{e(login_hint)}" autocomplete="username">
<button type="submit" id="other-next">Next</button>
</form>""")


def consent_page(*, action: str, hidden: Mapping[str, str], app_name: str, publisher: str, user: str,
                 permissions: Iterable[str], admin: bool = False, question: str = "") -> str:
    items = "\n".join(f"<li>{e(p)}</li>" for p in permissions) or "<li>Sign you in and read your profile</li>"
    who = ("on behalf of your organization" if admin else "")
    title = question or "Permissions requested"
    extra = ("<p>If you accept, this app will get access to the specified resources for all users in your "
             "organization. No one else will be prompted to review these permissions.</p>" if admin else "")
    return page(title, f"""
<h1>{e(title)}</h1>
<p>Signed in as <strong id="signed-in-user">{e(user)}</strong></p>
<p><strong>{e(app_name)}</strong> ({e(publisher)}) needs permission {e(who)} to:</p>
<ul id="permissions">
{items}
</ul>
{extra}
<form id="consent" method="post" action="{e(action)}" aria-label="Consent">
{hidden_fields(hidden)}<input type="hidden" name="step" value="consent">
<div class="actions">
<button type="submit" name="consent" value="accept" id="accept">Accept</button>
<button type="submit" name="consent" value="cancel" id="cancel">Cancel</button>
</div>
</form>""")


def error_page(code: int, message: str, *, trace_id: str, correlation_id: str, timestamp: str) -> str:
    return page("Sign in error", f"""
<h1>Sorry, but we're having trouble signing you in.</h1>
<div id="error" role="alert" data-error-code="{code}">
<p id="error-message">AADSTS{code}: {e(message)}</p>
</div>
<details><summary>Troubleshooting details</summary>
<dl><dt>Request Id</dt><dd>{e(trace_id)}</dd><dt>Correlation Id</dt><dd>{e(correlation_id)}</dd>
<dt>Timestamp</dt><dd>{e(timestamp)}</dd></dl></details>""")


def form_post_page(action: str, fields: Mapping[str, str]) -> str:
    """response_mode=form_post: a form that submits itself to the app's redirect URI."""
    return page("Working...", f"""
<form id="response" method="post" action="{e(action)}">
{hidden_fields(fields)}<noscript><p>Script is disabled. Click Submit to continue.</p>
<button type="submit">Submit</button></noscript>
</form>
<script>document.getElementById("response").submit();</script>""")


def device_code_page(*, action: str, message: str = "", code: int | None = None, prefill: str = "") -> str:
    alert = (f"<div id=\"error\" role=\"alert\" data-error-code=\"{code}\"><p>{e(message)}</p></div>"
             if message else "")
    return page("Enter code", f"""
<h1>Enter code</h1>
<p>Enter the code displayed on your app or device.</p>
{alert}
<form id="devicecode" method="post" action="{e(action)}" aria-label="Enter code">
<label for="otc">Code</label>
<input type="text" id="otc" name="otc" value="{e(prefill)}" autocomplete="off" autocapitalize="characters" required>
<button type="submit" id="next">Next</button>
</form>""")


def device_done_page(*, approved: bool, app_name: str) -> str:
    if approved:
        text = (f"You have signed in to the {app_name} application on your device. "
                "You may now close this window.")
    else:
        text = "You have declined to sign in to the application on your device. You may now close this window."
    return page(app_name, f"""
<h1>{e(app_name)}</h1>
<p id="done" data-outcome="{'approved' if approved else 'declined'}">{e(text)}</p>""")


def signed_out_page() -> str:
    return page("Signed out", "<h1>You signed out of your account</h1>"
                "<p id=\"done\" data-outcome=\"signed-out\">It's a good idea to close all browser windows.</p>")
