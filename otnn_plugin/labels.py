"""Class and attribute names of the datasets used in the paper (shared by the models' configs and the data)."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: The 40 CelebA attributes, in the column order of ``list_attr_celeba.txt``.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)

#: The 22 attributes the paper trains on, in the paper's order (appendix A.2.1).
CELEBA_PAPER_ATTRIBUTES = (
    "Attractive", "Bald", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Eyeglasses", "Gray_Hair",
    "Heavy_Makeup", "Male", "Mouth_Slightly_Open", "Mustache", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necktie", "Young",
)
