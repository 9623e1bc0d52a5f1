//! Draws a [`Scene`] into a label map and a linear-RGB albedo·shading image.
//!
//! The background (street, facades, walls, sky) is ray-cast per pixel; upright objects are
//! billboards drawn far to near. Every class has its own high-frequency texture at a 2–5 px
//! scale, shared by both domains, so classes are recognisable by texture and shape and not
//! only by colour, and mild blur/noise do not erase them.

use crate::noise::{fbm2, lattice, value_noise};
use crate::scene::{BarrierKind, Object, Rgb, Scene, SignShape, Thing, tid};
use uda_data::classes::{NUM_CLASSES, TRAIN_TO_LABEL};

/// Cityscapes label id of the ego-vehicle hood (ignored in evaluation).
pub const EGO_VEHICLE_ID: u8 = 1;

/// A rendered scene before any camera/appearance effect.
#[derive(Debug, Clone)]
pub(crate) struct Canvas {
    pub width: usize,
    pub height: usize,
    /// Cityscapes label ids, row-major.
    pub labels: Vec<u8>,
    /// Linear RGB radiance, roughly 0..1.
    pub rgb: Vec<Rgb>,
}

/// Per-class multiplicative albedo tint (the target's palette); all ones for the source.
pub(crate) type Palette = [Rgb; NUM_CLASSES];

pub(crate) const NEUTRAL_PALETTE: Palette = [[1.0; 3]; NUM_CLASSES];

fn scale(c: Rgb, k: f32) -> Rgb {
    c.map(|v| v * k)
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Salt per class so that textures of different classes are independent.
fn salt(seed: u64, class: u8) -> u64 {
    seed ^ (0x1000_0000_0000_0000u64.wrapping_mul(class as u64 + 1))
}

struct Hit {
    class: u8,
    color: Rgb,
    depth: f32,
}

impl Scene {
    pub(crate) fn render(&self, palette: &Palette) -> Canvas {
        let (w, h) = (self.width, self.height);
        let mut labels = vec![0u8; w * h];
        let mut rgb = vec![[0.0f32; 3]; w * h];
        let mut train = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let hit = self.background(x as f32 + 0.5, y as f32 + 0.5);
                let i = y * w + x;
                train[i] = hit.class;
                rgb[i] = self.haze(hit.color, hit.depth);
            }
        }
        for obj in &self.objects {
            self.draw_object(obj, &mut train, &mut rgb);
        }
        for (i, t) in train.iter().enumerate() {
            labels[i] = TRAIN_TO_LABEL[*t as usize];
            let tint = palette[*t as usize];
            rgb[i] = [
                rgb[i][0] * tint[0],
                rgb[i][1] * tint[1],
                rgb[i][2] * tint[2],
            ];
        }
        self.draw_ego(&mut labels, &mut rgb);
        Canvas {
            width: w,
            height: h,
            labels,
            rgb,
        }
    }

    /// Aerial perspective: far surfaces fade towards the horizon colour.
    fn haze(&self, color: Rgb, depth: f32) -> Rgb {
        if !depth.is_finite() {
            return color;
        }
        mix(color, self.sky_horizon, 1.0 - (-depth / 400.0).exp())
    }

    fn background(&self, px: f32, py: f32) -> Hit {
        let cam = &self.cam;
        let (dx, dy) = (px - cam.vp_x, py - cam.horizon);
        let z_ground = if dy > 0.0 {
            cam.focal * cam.height / dy
        } else {
            f32::INFINITY
        };
        let side = if dx < 0.0 { &self.left } else { &self.right };
        let adx = dx.abs().max(1e-4);
        // Barrier plane (closer than the facade plane on the same side).
        let z_b = cam.focal * side.barrier_x() / adx;
        if z_b < z_ground {
            let y_m = cam.height - dy * z_b / cam.focal;
            for b in &side.barriers {
                if (b.z0..=b.z1).contains(&z_b) && (0.0..=b.height).contains(&y_m) {
                    return self.barrier(b.kind, b.color, px, py, z_b);
                }
            }
        }
        let z_f = cam.focal * side.facade_x() / adx;
        if z_f < z_ground {
            let y_m = cam.height - dy * z_f / cam.focal;
            if let Some((top, block)) = side.backdrop.at(z_f)
                && y_m <= top
            {
                let color = match block {
                    Some(b) => self.facade(b, px, py, z_f, y_m, side.facade_x()),
                    None => self.foliage(
                        self.vegetation,
                        px,
                        py,
                        salt(self.tex_seed, tid::VEGETATION),
                    ),
                };
                let class = if block.is_some() {
                    tid::BUILDING
                } else {
                    tid::VEGETATION
                };
                return Hit {
                    class,
                    color: scale(color, side.shade),
                    depth: z_f,
                };
            }
            if dy <= 0.0 {
                return self.sky(px, py);
            }
        }
        if dy <= 0.0 {
            return self.sky(px, py);
        }
        let lateral = dx * z_ground / cam.focal;
        let (side, a) = if lateral < 0.0 {
            (&self.left, -lateral)
        } else {
            (&self.right, lateral)
        };
        let p = cam.scale(z_ground);
        let (class, color) = if a < side.road {
            (
                tid::ROAD,
                self.road_surface(px, py, lateral, a - side.road, z_ground, p),
            )
        } else if a < side.road + side.sidewalk {
            (
                tid::SIDEWALK,
                self.sidewalk_surface(px, py, (a - side.road) * p),
            )
        } else {
            (tid::TERRAIN, self.grass(px, py))
        };
        Hit {
            class,
            color,
            depth: z_ground,
        }
    }

    fn sky(&self, px: f32, py: f32) -> Hit {
        let t = (1.0 - py / self.cam.horizon.max(1.0)).clamp(0.0, 1.0);
        let base = mix(self.sky_horizon, self.sky_top, t.powf(0.7));
        let c = fbm2(salt(self.tex_seed, tid::SKY), px / 30.0, py / 12.0) + self.clouds - 0.45;
        let cloud = ((c - 0.0) / 0.25).clamp(0.0, 1.0);
        Hit {
            class: tid::SKY,
            color: mix(base, [0.80, 0.80, 0.83], cloud * 0.85),
            depth: f32::INFINITY,
        }
    }

    /// Asphalt: 2-px grain, large patches, painted lines (world-space, so they converge).
    fn road_surface(&self, px: f32, py: f32, lateral: f32, edge: f32, z: f32, p: f32) -> Rgb {
        let s = salt(self.tex_seed, tid::ROAD);
        let grain = value_noise(s, px / 1.6, py / 1.6) - 0.5;
        let patch = value_noise(s ^ 1, px / 18.0, py / 6.0) - 0.5;
        let mut c = scale(self.road, 1.0 + 0.45 * grain + 0.25 * patch);
        let half_px = (0.08 * p).max(0.5);
        let paint = [0.50, 0.50, 0.46];
        if let Some(cl) = self.centre_line
            && (lateral - cl).abs() * p < half_px
            && (z / 9.0).fract() < 0.45
        {
            c = paint;
        }
        if (edge + 0.3).abs() * p < half_px {
            c = paint;
        }
        c
    }

    /// Paving bricks in screen space (3-px rows, 5-px bricks), a light kerb along the road.
    fn sidewalk_surface(&self, px: f32, py: f32, from_kerb_px: f32) -> Rgb {
        let s = salt(self.tex_seed, tid::SIDEWALK);
        let (x, y) = (px as i32, py as i32);
        let row = y.div_euclid(3);
        let shifted = x + 2 * (row & 1);
        let mortar = y.rem_euclid(3) == 0 || shifted.rem_euclid(5) == 0;
        let brick = lattice(s, shifted.div_euclid(5), row) - 0.5;
        let k = if mortar { 0.62 } else { 1.0 + 0.3 * brick };
        let c = scale(self.sidewalk, k);
        if from_kerb_px < 1.0 {
            scale(self.sidewalk, 1.5)
        } else {
            c
        }
    }

    /// Grass: short vertical streaks.
    fn grass(&self, px: f32, py: f32) -> Rgb {
        let s = salt(self.tex_seed, tid::TERRAIN);
        let streak = value_noise(s, px / 1.2, py / 4.0) - 0.5;
        let patch = value_noise(s ^ 7, px / 14.0, py / 7.0) - 0.5;
        let c = scale(self.terrain, 1.0 + 0.6 * streak + 0.3 * patch);
        [c[0] * (1.0 + 0.2 * patch), c[1], c[2]]
    }

    /// Leaves: strong 2–4 px blotches with a yellow/dark variation.
    pub(crate) fn foliage(&self, base: Rgb, px: f32, py: f32, seed: u64) -> Rgb {
        let n = value_noise(seed, px / 1.8, py / 1.8) - 0.5;
        let m = value_noise(seed ^ 3, px / 4.0, py / 4.0) - 0.5;
        let k = (1.0 + 1.1 * n + 0.6 * m).max(0.15);
        [base[0] * k * (1.0 + 0.8 * m), base[1] * k, base[2] * k]
    }

    /// Facade with a window grid in facade coordinates (along-street depth, height).
    fn facade(
        &self,
        b: &crate::scene::Block,
        px: f32,
        py: f32,
        z: f32,
        y_m: f32,
        facade_x: f32,
    ) -> Rgb {
        let s = salt(self.tex_seed, tid::BUILDING);
        let grain = value_noise(s, px / 2.0, py / 2.0) - 0.5;
        let wall = scale(b.color, 1.0 + 0.25 * grain);
        // Pixel footprint on the facade: vertical 1/p metres, along-street z²/(f·x) metres.
        let p = self.cam.scale(z);
        let dz = z * z / (self.cam.focal * facade_x.max(0.1));
        let (fz, fy) = ((z / b.win_dz).fract(), (y_m / b.win_dy).fract());
        let in_window = (fz - 0.5).abs() < b.win_w / 2.0 && fy > 0.3 && fy < 0.3 + b.win_h;
        let resolvable = b.win_dy * p > 3.0 && b.win_dz > 2.5 * dz;
        let glass = scale(
            b.glass,
            1.0 + 0.8 * (value_noise(s ^ 5, px / 3.0, py / 5.0) - 0.5),
        );
        if resolvable {
            if in_window { glass } else { wall }
        } else {
            mix(wall, glass, 0.5 * b.win_w * b.win_h / 0.25)
        }
    }

    fn barrier(&self, kind: BarrierKind, color: Rgb, px: f32, py: f32, z: f32) -> Hit {
        let (x, y) = (px as i32, py as i32);
        let color = match kind {
            // Concrete blocks: a joint every 4 rows and every 9 columns (staggered).
            BarrierKind::Wall => {
                let row = y.div_euclid(4);
                let joint = y.rem_euclid(4) == 0 || (x + 4 * (row & 1)).rem_euclid(9) == 0;
                let g = value_noise(salt(self.tex_seed, tid::WALL), px / 2.0, py / 2.0) - 0.5;
                scale(color, if joint { 0.7 } else { 1.0 + 0.25 * g })
            }
            // Diagonal lattice with a 4-px period.
            BarrierKind::Fence => {
                let wire = (x + y).rem_euclid(4) == 0 || (x - y).rem_euclid(4) == 0;
                scale(color, if wire { 2.0 } else { 0.55 })
            }
        };
        let class = if kind == BarrierKind::Wall {
            tid::WALL
        } else {
            tid::FENCE
        };
        Hit {
            class,
            color,
            depth: z,
        }
    }

    fn draw_object(&self, obj: &Object, train: &mut [u8], rgb: &mut [Rgb]) {
        let cam = &self.cam;
        let p = cam.scale(obj.z);
        let (half_w, top) = obj.thing.extent();
        let cx = cam.vp_x + obj.x * p;
        let foot = cam.horizon + cam.height * p;
        let (w, h) = (self.width as i64, self.height as i64);
        let x0 = ((cx - half_w * p - 1.0).floor() as i64).max(0);
        let x1 = ((cx + half_w * p + 1.0).ceil() as i64).min(w - 1);
        let y0 = ((foot - top * p - 1.0).floor() as i64).max(0);
        let y1 = ((foot + 1.0).ceil() as i64).min(h - 1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let (xm, ym) = ((px - cx) / p, (foot - py) / p);
                if let Some((class, color)) = self.object_pixel(&obj.thing, xm, ym, p, px, py) {
                    let i = (y * w + x) as usize;
                    train[i] = class;
                    rgb[i] = self.haze(color, obj.z);
                }
            }
        }
    }

    /// Class and colour of an object at metric offset (`xm` right of its axis, `ym` above its
    /// foot); `p` (pixels per metre) keeps thin parts at least a pixel wide.
    fn object_pixel(
        &self,
        thing: &Thing,
        xm: f32,
        ym: f32,
        p: f32,
        px: f32,
        py: f32,
    ) -> Option<(u8, Rgb)> {
        let min_half = 0.5 / p;
        let grain = value_noise(self.tex_seed ^ 0xC0FFEE, px / 2.0, py / 2.0) - 0.5;
        match thing {
            Thing::Car { body } => {
                let ax = xm.abs();
                if ym < 0.0 {
                    return None;
                }
                if ym < 0.38 && (0.5..0.86).contains(&ax) {
                    return Some((tid::CAR, [0.015, 0.015, 0.015]));
                }
                if (0.22..0.9).contains(&ym) && ax < 0.9 {
                    let lamp = (0.62..0.76).contains(&ym) && ax > 0.66;
                    let plate = (0.36..0.5).contains(&ym) && ax < 0.25;
                    let c = if lamp {
                        [0.6, 0.03, 0.02]
                    } else if plate {
                        [0.6, 0.6, 0.55]
                    } else {
                        scale(*body, 1.0 + 0.2 * grain - 0.15 * (ym - 0.55))
                    };
                    return Some((tid::CAR, c));
                }
                let lim = 0.86 - (ym - 0.9) * 0.45;
                if (0.9..1.45).contains(&ym) && ax < lim {
                    let frame = ax > lim - 0.1 || !(0.98..=1.37).contains(&ym);
                    let c = if frame {
                        scale(*body, 0.9)
                    } else {
                        [0.03, 0.035, 0.045]
                    };
                    return Some((tid::CAR, scale(c, 1.0 + 0.2 * grain)));
                }
                None
            }
            Thing::Person {
                shirt,
                trousers,
                skin,
                height,
                stride,
            } => {
                let hh = *height;
                let head = (xm * xm + (ym - (hh - 0.12)).powi(2)).sqrt() < 0.12_f32.max(min_half);
                if head {
                    let hair = ym > hh - 0.07;
                    return Some((tid::PERSON, if hair { [0.05, 0.03, 0.02] } else { *skin }));
                }
                let torso = (0.47 * hh..hh - 0.23).contains(&ym);
                if torso && xm.abs() < 0.21_f32.max(min_half) {
                    return Some((tid::PERSON, scale(*shirt, 1.0 + 0.2 * grain)));
                }
                if torso && ym > 0.55 * hh && (0.21..0.27).contains(&xm.abs()) {
                    return Some((tid::PERSON, scale(*shirt, 0.8)));
                }
                if (0.0..0.47 * hh).contains(&ym) {
                    let spread = stride * (1.0 - ym / (0.47 * hh));
                    let leg = |c: f32| (xm - c).abs() < 0.085_f32.max(min_half);
                    if leg(-0.1 - spread) || leg(0.1 + spread) {
                        return Some((tid::PERSON, scale(*trousers, 1.0 + 0.2 * grain)));
                    }
                }
                None
            }
            Thing::Pole {
                height,
                width,
                color,
                sign,
                light,
            } => {
                if let Some((shape, face, y_c)) = sign {
                    let (u, v) = (xm, ym - y_c);
                    let r = 0.5_f32.max(1.5 / p);
                    let inside = |r: f32| match shape {
                        SignShape::Disc => (u * u + v * v).sqrt() < r,
                        SignShape::Triangle => v > -r * 0.8 && v < r && u.abs() < (r - v) * 0.62,
                        SignShape::Panel => u.abs() < r * 0.85 && v.abs() < r * 0.75,
                    };
                    if inside(r) {
                        let c = if inside(r * 0.72) {
                            *face
                        } else {
                            [0.62, 0.62, 0.60]
                        };
                        return Some((tid::SIGN, c));
                    }
                }
                if let Some((y_c, lit)) = light {
                    let (u, v) = (xm, ym - y_c);
                    let hw = 0.25_f32.max(1.0 / p);
                    if u.abs() < hw && v.abs() < 0.6_f32.max(2.0 / p) {
                        let lamp_y = [0.36, 0.0, -0.36];
                        let lamp_c = [[0.9, 0.05, 0.02], [0.9, 0.6, 0.02], [0.05, 0.8, 0.3]];
                        for (k, ly) in lamp_y.iter().enumerate() {
                            if (u * u + (v - ly).powi(2)).sqrt() < 0.14 {
                                return Some((
                                    tid::LIGHT,
                                    if k == *lit {
                                        lamp_c[k]
                                    } else {
                                        scale(lamp_c[k], 0.08)
                                    },
                                ));
                            }
                        }
                        return Some((tid::LIGHT, [0.02, 0.022, 0.02]));
                    }
                }
                if (0.0..*height).contains(&ym) && xm.abs() < (width / 2.0).max(min_half) {
                    let highlight = 1.0 + 0.6 * (xm / (width / 2.0).max(min_half));
                    return Some((tid::POLE, scale(*color, highlight)));
                }
                None
            }
            Thing::Tree {
                trunk,
                crowns,
                color,
                seed,
            } => {
                for &(cx, cy, r) in crowns {
                    let d = ((xm - cx).powi(2) + (ym - cy).powi(2)).sqrt() / r;
                    let edge = 0.85 + 0.3 * value_noise(*seed, px / 2.0, py / 2.0);
                    if d < edge {
                        return Some((tid::VEGETATION, self.foliage(*color, px, py, *seed)));
                    }
                }
                if (0.0..*trunk + 0.5).contains(&ym) && xm.abs() < 0.15_f32.max(min_half) {
                    return Some((
                        tid::VEGETATION,
                        scale([0.08, 0.05, 0.03], 1.0 + 0.4 * grain),
                    ));
                }
                None
            }
        }
    }

    /// The ego vehicle's hood: a dark curved strip at the bottom (label id 1, not a class).
    fn draw_ego(&self, labels: &mut [u8], rgb: &mut [Rgb]) {
        if self.ego_rows == 0 {
            return;
        }
        let (w, h) = (self.width, self.height);
        let rows = self.ego_rows as f32;
        for y in 0..h {
            for x in 0..w {
                let u = (x as f32 + 0.5) / w as f32 * 2.0 - 1.0;
                let top = h as f32 - rows * (1.0 - 0.4 * u * u);
                if (y as f32 + 0.5) > top {
                    let i = y * w + x;
                    labels[i] = EGO_VEHICLE_ID;
                    let shine = (-(u * 3.0).powi(2)).exp() * 0.1;
                    rgb[i] = [0.03 + shine, 0.03 + shine, 0.035 + shine];
                }
            }
        }
    }
}

impl Thing {
    /// Half width and height (metres) of the object's bounding box around its axis.
    fn extent(&self) -> (f32, f32) {
        match self {
            Thing::Car { .. } => (0.95, 1.5),
            Thing::Person { height, stride, .. } => (0.35 + stride, *height),
            Thing::Pole { height, .. } => (0.6, height.max(4.0)),
            Thing::Tree { crowns, .. } => {
                let hw = crowns
                    .iter()
                    .map(|c| c.0.abs() + c.2 * 1.2)
                    .fold(0.3, f32::max);
                let top = crowns.iter().map(|c| c.1 + c.2 * 1.2).fold(0.0, f32::max);
                (hw, top)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::rng_for;

    #[test]
    fn render_covers_the_image_with_valid_ids() {
        for i in 0..10 {
            let scene = Scene::sample(&mut rng_for(&[i]), 160, 96, 0.0, 1.0);
            let c = scene.render(&NEUTRAL_PALETTE);
            assert_eq!(c.labels.len(), 160 * 96);
            for &l in &c.labels {
                let t = uda_data::classes::LABEL_TO_TRAIN[l as usize];
                assert!(t != 255 || l == EGO_VEHICLE_ID, "unexpected label id {l}");
            }
            assert!(c.rgb.iter().flatten().all(|v| v.is_finite() && *v >= 0.0));
        }
    }
}
