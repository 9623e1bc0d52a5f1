//! The page: one HTML file with a small stylesheet, a table of contents, the sections in order,
//! every chart as inline SVG and every image as a `data:` PNG. No script, font or image is
//! fetched from anywhere.
//!
//! The one script is a self-check: it records any script error, failed resource and image that
//! did not decode into attributes of `<html>` (`data-errors`, `data-images`), which a headless
//! browser dumps with the DOM (tests/report_html.rs), so "no console errors" is a test that can
//! fail, not a hope.

use crate::chart::encode;
use crate::error::Result;
use crate::page::{PageOptions, Sources};
use crate::views::{Block, Section, Tiles};
use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:0 auto;\
max-width:1400px;padding:12px 24px;color:#222}h1{font-size:1.5em;margin:.4em 0}\
h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:1.6em}\
nav a{margin-right:1em}p.intro{color:#555;margin:.3em 0 .8em}\
p.note{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:.5em 0}\
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:12px}\
td,th{padding:2px 5px;border:1px solid #e4e4e4;text-align:right;white-space:nowrap}\
th.run,tbody th{text-align:left}th.cls{vertical-align:bottom;height:110px}\
th.cls span{writing-mode:vertical-rl;transform:rotate(180deg)}td.best{font-weight:bold}\
td.na{color:#aaa;text-align:center}tr.delta{font-size:11px;color:#333}\
figure{margin:.5em 0;display:inline-block;vertical-align:top}figure svg{max-width:100%;height:auto}\
.grid{display:grid;gap:2px;align-items:center;font-size:12px}.grid img{width:100%;image-rendering:pixelated}\
.grid .h{font-weight:bold;text-align:center}.grid .l{overflow-wrap:anywhere}details{margin:.4em 0}summary{cursor:pointer}";

const SELF_CHECK: &str = "<script>(function(){var d=document.documentElement,e=[];\
function rec(m){e.push(String(m));d.setAttribute('data-errors',e.join(' | '));}\
window.addEventListener('error',function(ev){var t=ev.target;rec(t&&t!==window&&(t.src||t.href)?\
'failed to load '+(t.src||t.href).slice(0,60):ev.message);},true);\
window.addEventListener('unhandledrejection',function(ev){rec('unhandled rejection: '+ev.reason);});\
var ce=console.error;console.error=function(){rec(Array.prototype.join.call(arguments,' '));\
return ce.apply(console,arguments);};\
window.addEventListener('load',function(){var bad=[],n=0;document.querySelectorAll('img').forEach(\
function(i){n++;if(!i.complete||i.naturalWidth===0)bad.push(i.alt);});\
d.setAttribute('data-images',bad.length?'broken: '+bad.join(', '):'ok '+n);});})();</script>";

fn tiles(t: &Tiles) -> Result<String> {
    let cols = t.columns.len() + 1;
    let mut h = format!(
        "<div class=\"grid\" style=\"grid-template-columns:8em repeat({},1fr)\"><div></div>",
        cols - 1
    );
    for c in &t.columns {
        let _ = write!(h, "<div class=\"h\">{}</div>", esc(c));
    }
    for r in &t.rows {
        let _ = write!(h, "<div class=\"l\">{}</div>", esc(&r.label));
        for (k, tile) in r.tiles.iter().enumerate() {
            let png = encode::png_rgb(tile.width as u32, tile.height as u32, &tile.data)?;
            let alt = format!(
                "{} {}",
                r.label,
                t.columns.get(k).map(String::as_str).unwrap_or("")
            );
            let _ = write!(
                h,
                "<img alt=\"{}\" width=\"{}\" height=\"{}\" src=\"{}\">",
                esc(&alt),
                tile.width,
                tile.height,
                encode::data_uri(&png)
            );
        }
    }
    Ok(h + "</div>")
}

fn section(out: &mut String, s: &Section) -> Result<()> {
    let _ = write!(
        out,
        "<section id=\"{}\"><h2>{}</h2><p class=\"intro\">{}</p>",
        s.id,
        esc(s.title),
        esc(&s.intro)
    );
    for b in &s.blocks {
        match b {
            Block::Figure(f) => {
                let _ = write!(
                    out,
                    "<figure id=\"fig-{}\" data-chart=\"{}\">{}</figure>",
                    esc(&f.name),
                    esc(&f.name),
                    svg_body(&f.svg()?)
                );
            }
            Block::Html(h) => out.push_str(h),
            Block::Note(n) => {
                let _ = write!(out, "<p class=\"note\">{}</p>", esc(n));
            }
            Block::Tiles(t) => out.push_str(&tiles(t)?),
        }
    }
    out.push_str("</section>\n");
    Ok(())
}

/// The `<svg>` element of an SVG document (drops the XML declaration, invalid inside HTML).
fn svg_body(doc: &str) -> &str {
    doc.find("<svg").map(|i| &doc[i..]).unwrap_or(doc)
}

pub(crate) fn page(sections: &[Section], sources: &Sources, opts: &PageOptions) -> Result<String> {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title>{SELF_CHECK}<style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(&opts.title),
        esc(&opts.title)
    );
    let _ = write!(
        out,
        "<p class=\"intro\">{} evaluated runs{}. Generated by <code>uda-pipe report --html</code>.</p><nav>",
        sources.runs.len(),
        sources
            .pipeline
            .as_deref()
            .map(|p| format!(" of pipeline <code>{}</code>", esc(p)))
            .unwrap_or_default()
    );
    for s in sections {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", s.id, esc(s.title));
    }
    out.push_str("</nav>");
    if !sources.notes.is_empty() {
        out.push_str("<section id=\"input-notes\">");
        for n in &sources.notes {
            let _ = write!(out, "<p class=\"note\">{}</p>", esc(n));
        }
        out.push_str("</section>");
    }
    for s in sections {
        section(&mut out, s)?;
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_svg_body() {
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(svg_body("<?xml version=\"1.0\"?>\n<svg x>"), "<svg x>");
    }
}
