//! The one font of every chart: DejaVu Sans, embedded (the `dejavu` crate), registered with
//! plotters' ab_glyph text back-end under the family name `sans-serif`.
//!
//! Embedded because plotters measures text to lay out labels even for SVG, and the bitmap back-end
//! draws glyphs itself: with plotters' default font-kit back-end the report would link the
//! system's fontconfig and freetype and draw nothing on a machine without fonts. The SVG files
//! name the family `sans-serif`, so browsers use their own sans font at the measured sizes.

use std::sync::Once;

pub(super) const FAMILY: &str = "sans-serif";

/// Registers the font once per process (charts are drawn from several threads in tests).
pub(super) fn ensure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType file shipped by the crate; failure would be a build
        // defect, and plotters then reports the missing font when drawing text.
        let _ = plotters::style::register_font(
            FAMILY,
            plotters::style::FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}
