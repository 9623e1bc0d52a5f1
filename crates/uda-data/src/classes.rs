//! The 19 Cityscapes evaluation classes and the label-id → train-id map, defined once.
//!
//! GTA5 label PNGs use the Cityscapes label ids, so the same map serves both datasets.

/// Train id that training and evaluation ignore.
pub const IGNORE: u8 = 255;
/// Number of evaluated classes.
pub const NUM_CLASSES: usize = 19;

/// One evaluated class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub train_id: u8,
    pub name: &'static str,
    /// The Cityscapes label id (as stored in `*_gtFine_labelIds.png` and GTA5 labels).
    pub label_id: u8,
    pub color: [u8; 3],
}

const fn c(train_id: u8, name: &'static str, label_id: u8, color: [u8; 3]) -> Class {
    Class {
        train_id,
        name,
        label_id,
        color,
    }
}

/// The 19 classes in train-id order (from the official `cityscapesscripts` label table).
pub const CLASSES: [Class; NUM_CLASSES] = [
    c(0, "road", 7, [128, 64, 128]),
    c(1, "sidewalk", 8, [244, 35, 232]),
    c(2, "building", 11, [70, 70, 70]),
    c(3, "wall", 12, [102, 102, 156]),
    c(4, "fence", 13, [190, 153, 153]),
    c(5, "pole", 17, [153, 153, 153]),
    c(6, "traffic light", 19, [250, 170, 30]),
    c(7, "traffic sign", 20, [220, 220, 0]),
    c(8, "vegetation", 21, [107, 142, 35]),
    c(9, "terrain", 22, [152, 251, 152]),
    c(10, "sky", 23, [70, 130, 180]),
    c(11, "person", 24, [220, 20, 60]),
    c(12, "rider", 25, [255, 0, 0]),
    c(13, "car", 26, [0, 0, 142]),
    c(14, "truck", 27, [0, 0, 70]),
    c(15, "bus", 28, [0, 60, 100]),
    c(16, "train", 31, [0, 80, 100]),
    c(17, "motorcycle", 32, [0, 0, 230]),
    c(18, "bicycle", 33, [119, 11, 32]),
];

/// Lookup table label id → train id (every unlisted id maps to [`IGNORE`]).
pub const LABEL_TO_TRAIN: [u8; 256] = {
    let mut lut = [IGNORE; 256];
    let mut i = 0;
    while i < NUM_CLASSES {
        lut[CLASSES[i].label_id as usize] = CLASSES[i].train_id;
        i += 1;
    }
    lut
};

/// Lookup table train id → label id (ignore and out-of-range train ids map to 0, "unlabeled").
pub const TRAIN_TO_LABEL: [u8; 256] = {
    let mut lut = [0u8; 256];
    let mut i = 0;
    while i < NUM_CLASSES {
        lut[CLASSES[i].train_id as usize] = CLASSES[i].label_id;
        i += 1;
    }
    lut
};

/// Maps label ids to train ids in place.
pub fn label_ids_to_train_ids(pixels: &mut [u8]) {
    for p in pixels {
        *p = LABEL_TO_TRAIN[*p as usize];
    }
}

/// Colour of a train id for previews; ignore (and anything unknown) is black.
pub fn train_id_color(train_id: u8) -> [u8; 3] {
    CLASSES
        .get(train_id as usize)
        .map_or([0, 0, 0], |c| c.color)
}

/// Colourises a train-id map into interleaved RGB.
pub fn colorize(train_ids: &[u8]) -> Vec<u8> {
    train_ids.iter().flat_map(|&t| train_id_color(t)).collect()
}

/// Class by (case-insensitive) name, e.g. for command-line arguments.
pub fn class_by_name(name: &str) -> Option<&'static Class> {
    CLASSES.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_ids_are_dense_and_ordered() {
        for (i, c) in CLASSES.iter().enumerate() {
            assert_eq!(c.train_id as usize, i);
        }
    }

    #[test]
    fn maps_round_trip_and_ignore_the_rest() {
        for c in &CLASSES {
            assert_eq!(LABEL_TO_TRAIN[c.label_id as usize], c.train_id);
            assert_eq!(TRAIN_TO_LABEL[c.train_id as usize], c.label_id);
        }
        // Official non-evaluated ids: unlabeled 0, ego vehicle 1, ..., parking 9, rail track 10,
        // guard rail 14, bridge 15, tunnel 16, polegroup 18, caravan 29, trailer 30, license plate -1.
        for id in [
            0u8, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 255,
        ] {
            assert_eq!(LABEL_TO_TRAIN[id as usize], IGNORE, "id {id}");
        }
        let mut px = vec![7, 26, 0, 33];
        label_ids_to_train_ids(&mut px);
        assert_eq!(px, vec![0, 13, 255, 18]);
    }

    #[test]
    fn colours_and_names() {
        assert_eq!(train_id_color(13), [0, 0, 142]);
        assert_eq!(train_id_color(IGNORE), [0, 0, 0]);
        assert_eq!(class_by_name("Traffic Light").unwrap().train_id, 6);
        assert_eq!(colorize(&[0, 10]), vec![128, 64, 128, 70, 130, 180]);
    }
}
